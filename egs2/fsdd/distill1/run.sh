#!/usr/bin/env bash
# Real speech with a held-out speaker: a small HuBERT pretrained on synthetic English plus the
# FSDD training audio, D&T students (CNN and Fbank), CTC fine-tuning on four FSDD speakers,
# scored on the fifth (dev) and the held-out sixth (test).
set -euo pipefail

exec ./distill.sh \
    --train_set train_pretrain \
    --valid_set fsdd_dev \
    --test_sets "fsdd_dev fsdd_test" \
    --finetune_sets fsdd_train \
    --teacher_config conf/teacher/pretrain_small.yaml \
    --distill_configs conf/distill/dt_cnn.yaml \
    --fbank_configs conf/distill/dt_fbank.yaml \
    --asr_config conf/asr/ctc.yaml \
    --asr_scratch_config conf/distill/dt_fbank.yaml \
    --asr_teacher false \
    --grammar conf/asr/grammar_digits.txt \
    "$@"
