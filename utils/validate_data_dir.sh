#!/usr/bin/env bash
# Validate a Kaldi data dir: sorted unique ids, consistent files, readable audio.
# Usage and options: validate_data_dir.sh --help (python -m espnet_distill.bin.data_dir validate --help).
set -euo pipefail
exec python -m espnet_distill.bin.data_dir validate "$@"
