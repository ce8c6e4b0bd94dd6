#!/usr/bin/env bash
# Kaldi's combine_data.sh DEST SRC1 SRC2 ... (--extra-files and --skip-fix accepted: every table
# we know is combined, and the result is consistent).
set -euo pipefail
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --extra-files|--skip-fix) shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
exec "$(dirname "${BASH_SOURCE[0]}")/combine_data_dir.sh" "${args[@]}"
