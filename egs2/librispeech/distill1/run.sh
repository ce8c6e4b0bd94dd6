#!/usr/bin/env bash
# The paper's setting: HuBERT Base (s3prl) distilled on LibriSpeech 960 h into S&W, D&T and
# D&T-Fbank, each fine-tuned with character CTC on train_clean_100 and Libri-light 10 h / 1 h,
# scored on dev/test clean/other. GPU scale: see README.md in this folder for the cost per stage.
# Stage 6 decodes on the training GPUs (--gpu_inference auto) and leaves out the int8 CPU pass over
# the 21 h of test sets (add it with --int8_inference true); it also decodes with an LSTM LM trained
# on LibriSpeech's LM text (stage 1 fetches it: db.sh's LIBRISPEECH_LM), CTC prefix beam search +
# LM beside CTC greedy (--use_lm false: greedy only).
set -euo pipefail
. ./db.sh

exec ./distill.sh \
    --ngpu 1 \
    --train_set train_960 \
    --valid_set dev_clean \
    --test_sets "dev_clean dev_other test_clean test_other" \
    --finetune_sets "train_clean_100 train_10h train_1h" \
    --teacher_config conf/teacher/s3prl_hubert_base.yaml \
    --distill_configs "conf/distill/sw.yaml conf/distill/dt.yaml" \
    --fbank_configs conf/distill/dt_fbank.yaml \
    --asr_config conf/asr/ctc_100h.yaml \
    --asr_set_configs "train_10h=conf/asr/ctc_10h.yaml train_1h=conf/asr/ctc_1h.yaml" \
    --asr_scratch_config "" \
    --asr_teacher false \
    --nj 16 \
    --int8_inference false \
    --use_lm true \
    --lm_train_text "${LIBRISPEECH_LM}" \
    --inference_config conf/asr/decode_lm.yaml \
    --lm_weight 0.6 \
    "$@"
