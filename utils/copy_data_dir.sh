#!/usr/bin/env bash
# Kaldi's copy_data_dir.sh: copy a data dir, optionally renaming ids.
#   copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] [--validate-opts O] SRC DST
set -euo pipefail
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --validate-opts) shift 2 ;;  # Kaldi validates the copy; ours is written consistent
        # one word, so that a value with a leading dash (Kaldi's --utt-suffix -reverb) stays a value
        --utt-prefix|--utt-suffix|--spk-prefix|--spk-suffix) [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }
            args+=("$1=$2"); shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
exec python -m espnet_distill.bin.kaldi_data_dir copy "${args[@]}"
