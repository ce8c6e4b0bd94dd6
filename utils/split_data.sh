#!/usr/bin/env bash
# Kaldi's split_data.sh [--per-utt] DIR N: DIR/splitN/{1..N} (speakers kept whole; --per-utt:
# DIR/splitNutt/{1..N}).
set -euo pipefail
exec python -m espnet_distill.bin.kaldi_data_dir split "$@"
