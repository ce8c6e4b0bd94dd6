#!/usr/bin/env bash
# The embedded default recipe: a synthetic English corpus, a small HuBERT teacher
# pretrained on it, distilled students, ESPnet ASR on a low-resource subset.
#   ./run.sh --stage 1 --stop_stage 6     (see ./distill.sh --help for all options)
set -euo pipefail

# CPU training is bit-exact for one thread count only: the demo's RESULTS.md was made with 2 threads
# per training job (set train_threads to use others; the default elsewhere is the free cores).
export train_threads=${train_threads:-2}
exec ./distill.sh \
    --train_set train \
    --valid_set dev \
    --test_sets "dev test" \
    --finetune_sets "train_10min" \
    --local_data_opts "--train_hours 1.0 --nj 2" \
    --export_onnx true \
    --use_lm true \
    --lm_train_text data/train \
    "$@"
