#!/usr/bin/env bash
# Kaldi-style job launcher (slurm backend): slurm.sh [options] JOB=1:N log/x.JOB.log command ... JOB ...
# Options: --max-jobs-run N, --num-threads N, --mem 4G, --gpu N; see slurm.sh --help.
set -euo pipefail
exec python -m espnet_distill.bin.launch slurm "$@"
