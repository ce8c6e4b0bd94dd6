#!/usr/bin/env bash
# Copy a subset of a data dir. Two forms:
#   ours:  subset_data_dir.sh (--first N | --random N [--seed S] | --speakers A,B | --seconds S
#                             | --utt-list FILE | --spk-list FILE) SRC DST
#   Kaldi: subset_data_dir.sh [--first | --last | --shortest | --speakers | --per-spk] SRC N DST
#          (no flag: N utterances spread evenly; --speakers: whole speakers up to about N utterances)
# Usage and options: python -m espnet_distill.bin.subset_data_dir --help.
set -euo pipefail
if [ $# -ge 3 ] && [[ "${@: -2:1}" =~ ^[0-9]+$ ]] && [[ "${@: -3:1}" != --* ]]; then  # Kaldi's SRC N DST
    mode=evenly
    case "$1" in --first|--last|--shortest|--speakers|--per-spk) mode=${1#--}; shift ;; esac
    [ $# -eq 3 ] || { echo "$0: Kaldi form: [--first|--last|--shortest|--speakers|--per-spk] SRC N DST" >&2; exit 2; }
    exec python -m espnet_distill.bin.subset_data_dir --kaldi "${mode}" "$1" "$2" "$3"
fi
exec python -m espnet_distill.bin.subset_data_dir "$@"
