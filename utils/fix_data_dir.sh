#!/usr/bin/env bash
# Keep the utterances present in every file of a data dir, sort them, rebuild spk2utt.
# Usage and options: fix_data_dir.sh --help (python -m espnet_distill.bin.data_dir fix --help).
set -euo pipefail
exec python -m espnet_distill.bin.data_dir fix "$@"
