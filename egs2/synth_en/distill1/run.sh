#!/usr/bin/env bash
# The embedded default recipe: a synthetic English corpus, a small HuBERT teacher
# pretrained on it, distilled students, ESPnet ASR on a low-resource subset.
#   ./run.sh --stage 1 --stop_stage 6     (see ./distill.sh --help for all options)
set -euo pipefail

exec ./distill.sh \
    --train_set train \
    --valid_set dev \
    --test_sets "dev test" \
    --finetune_sets "train_10min" \
    --local_data_opts "--train_hours 1.0 --nj 2" \
    "$@"
