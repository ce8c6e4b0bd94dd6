#!/usr/bin/env bash
# Invert utt2spk into spk2utt.
# Usage and options: utt2spk_to_spk2utt.sh --help (python -m espnet_distill.bin.data_dir utt2spk-to-spk2utt --help).
set -euo pipefail
exec python -m espnet_distill.bin.data_dir utt2spk-to-spk2utt "$@"
