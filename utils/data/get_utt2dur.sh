#!/usr/bin/env bash
# Write <data-dir>/utt2dur (seconds per utterance), as Kaldi's utils/data/get_utt2dur.sh does:
# from segments when there are any, else from the audio file headers (no decoding; pipes and
# ark entries are read), in --nj processes. Recipe stage 1 runs it on every data dir, so that
# training processes never measure the corpus themselves.
#
#   utils/data/get_utt2dur.sh [--nj N] [--cmd CMD] [--read-entire-file true|false] <data-dir>
#
# --cmd and --read-entire-file are accepted for Kaldi compatibility: the job runs here, and
# entries that need reading are always read whole.
set -euo pipefail
nj=4
cmd=
read_entire_file=false
. "$(dirname "${BASH_SOURCE[0]}")/../parse_options.sh"
if [ $# -ne 1 ]; then
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 1
fi
: "${cmd}" "${read_entire_file}"
exec python -m espnet_distill.bin.data_dir utt2dur --nj "${nj}" "$1"
