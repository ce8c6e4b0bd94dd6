#!/usr/bin/env bash
# Copy a subset of a data dir: first N, random N, by speakers, or by total duration.
# Usage and options: subset_data_dir.sh --help (python -m espnet_distill.bin.data_dir subset --help).
set -euo pipefail
exec python -m espnet_distill.bin.data_dir subset "$@"
