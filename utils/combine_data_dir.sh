#!/usr/bin/env bash
# Combine several data dirs into one.
# Usage and options: combine_data_dir.sh --help (python -m espnet_distill.bin.kaldi_data_dir combine --help).
set -euo pipefail
exec python -m espnet_distill.bin.kaldi_data_dir combine "$@"
