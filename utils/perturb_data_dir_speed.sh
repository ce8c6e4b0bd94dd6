#!/usr/bin/env bash
# Kaldi's perturb_data_dir_speed.sh FACTOR SRC DST: ids prefixed sp<FACTOR>-, audio through
# "sox ... speed FACTOR" pipes, segment times and durations divided by FACTOR.
set -euo pipefail
exec python -m espnet_distill.bin.kaldi_data_dir perturb-speed "$@"
