#!/usr/bin/env bash
# Split an scp-like file into N parts (optionally keeping speakers whole).
# Usage and options: split_scp.sh --help (python -m espnet_distill.bin.kaldi_data_dir split-scp --help).
set -euo pipefail
exec python -m espnet_distill.bin.kaldi_data_dir split-scp "$@"
