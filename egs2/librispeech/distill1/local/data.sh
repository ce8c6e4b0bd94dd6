#!/usr/bin/env bash
# Stage 1 for LibriSpeech: Kaldi dirs for the dev/test sets, train_clean_100, train_960 (when the
# 360 h and 500 h splits are there) and the Libri-light fine-tuning sets train_10min/1h/10h.
# Nothing is downloaded here: when a folder is missing, the message says what to put where.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

librilight=true   # also prepare the Libri-light subsets (needs LIBRILIGHT in db.sh)
help_message="Usage: $0 [--librilight true|false]"

. ./path.sh
. ./db.sh
. utils/parse_options.sh

need() {  # need DIR WHAT
    if [ ! -d "$1" ]; then
        log "Error: $1 not found. $2"
        exit 1
    fi
}

need "${LIBRISPEECH}" "Set LIBRISPEECH in db.sh to the folder that holds dev-clean/, test-clean/, train-clean-100/, ...: unpack dev-clean.tar.gz, dev-other.tar.gz, test-clean.tar.gz, test-other.tar.gz and train-clean-100.tar.gz (plus train-clean-360 and train-other-500 for train_960) from LibriSpeech (openslr resource 12) there."
for split in dev-clean dev-other test-clean test-other train-clean-100; do
    need "${LIBRISPEECH}/${split}" "Unpack ${split}.tar.gz from LibriSpeech into ${LIBRISPEECH}/ (it creates ${split}/)."
    python -m espnet_distill.bin.prepare_librispeech split --root "${LIBRISPEECH}" --split "${split}" --out "data/${split//-/_}"
    utils/validate_data_dir.sh --no-audio "data/${split//-/_}"
done
if [ -d "${LIBRISPEECH}/train-clean-360" ] && [ -d "${LIBRISPEECH}/train-other-500" ]; then
    python -m espnet_distill.bin.prepare_librispeech split --root "${LIBRISPEECH}" \
        --split train-clean-100 train-clean-360 train-other-500 --out data/train_960
    utils/validate_data_dir.sh --no-audio data/train_960
else
    log "train-clean-360/ or train-other-500/ not in ${LIBRISPEECH}: data/train_960 not prepared (train_clean_100 only)"
fi
if ${librilight}; then
    need "${LIBRILIGHT}" "Set LIBRILIGHT in db.sh to Libri-light's librispeech_finetuning/ (holding 1h/ and 9h/), or pass --librilight false."
    for subset in 10min 1h 10h; do
        python -m espnet_distill.bin.prepare_librispeech librilight --root "${LIBRILIGHT}" --subset "${subset}" --out "data/train_${subset}"
        utils/validate_data_dir.sh --no-audio "data/train_${subset}"
    done
fi
log "Successfully finished. [elapsed=${SECONDS}s]"
