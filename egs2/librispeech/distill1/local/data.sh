#!/usr/bin/env bash
# Stage 1 for LibriSpeech: Kaldi dirs for dev_clean, dev_other, test_clean, test_other,
# train_clean_100, train_960 (--train_960 true) and the Libri-light fine-tuning sets
# train_10min, train_1h, train_10h (--librilight true), and LibriSpeech's LM text (--lm_text true:
# librispeech-lm-norm.txt.gz, openslr.org resource 11: normalised book text, upper case, about
# 800 M words), which the LM of --use_lm trains on (run.sh's --lm_train_text).
#
# The corpora are read from db.sh's LIBRISPEECH and LIBRILIGHT. A split that is not there is
# downloaded from LIBRISPEECH_URL / LIBRILIGHT_URL (the archives are kept in downloads/archives;
# an interrupted download continues) unless --download false; when it cannot be downloaded, the
# message says which archive to unpack where.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

train_960=true    # also prepare train_960 (needs train-clean-360 and train-other-500: 30 GB more)
librilight=true   # also prepare the Libri-light subsets train_10min, train_1h, train_10h
lm_text=true      # also fetch LibriSpeech's LM text (${LIBRISPEECH_LM}, 1.4 GB)
download=true     # download what is missing (false: only say what to put where)
archives=downloads/archives  # where downloaded archives are kept
help_message="Usage: $0 [options]   (corpus locations and mirrors: db.sh)"

. ./path.sh
. ./db.sh
. utils/parse_options.sh

# fetch WHAT NEEDED INTO URL INSTRUCTION: make folder NEEDED exist, when allowed by downloading
# the archive URL and unpacking it (its top folder stripped) into INTO.
fetch() {
    local what=$1 needed=$2 into=$3 url=$4 instruction=$5 rc=0
    [ ! -d "${needed}" ] || return 0
    if ${download}; then
        log "${needed} not found: downloading ${what}"
        utils/download_and_untar.sh --strip-components 1 "${url}" "${archives}" "${into}" || rc=$?
        if [ "${rc}" -eq 0 ] && [ -d "${needed}" ]; then
            return 0
        fi
        log "Error: ${what} could not be downloaded from ${url}."
    else
        log "Error: ${needed} not found (--download false)."
    fi
    log "${instruction}"
    exit 1
}

splits="dev-clean dev-other test-clean test-other train-clean-100"
! ${train_960} || splits+=" train-clean-360 train-other-500"
for split in ${splits}; do
    fetch "LibriSpeech ${split}" "${LIBRISPEECH}/${split}" "${LIBRISPEECH}" "${LIBRISPEECH_URL}/${split}.tar.gz" \
        "Unpack ${split}.tar.gz from LibriSpeech (openslr.org resource 12) so that ${LIBRISPEECH}/${split}/ holds its <speaker>/<chapter>/ folders, or set LIBRISPEECH in db.sh to the folder that holds ${split}/."
done
if ${lm_text} && [ ! -f "${LIBRISPEECH_LM}" ]; then  # a gzip text, kept as it is: the LM step reads it
    rc=0
    if ${download}; then
        log "${LIBRISPEECH_LM} not found: downloading LibriSpeech's LM text"
        utils/download.sh "${LIBRISPEECH_LM_URL}" "$(dirname "${LIBRISPEECH_LM}")" || rc=$?
        if [ "${rc}" -eq 0 ] && [ "$(dirname "${LIBRISPEECH_LM}")/${LIBRISPEECH_LM_URL##*/}" != "${LIBRISPEECH_LM}" ]; then
            mv "$(dirname "${LIBRISPEECH_LM}")/${LIBRISPEECH_LM_URL##*/}" "${LIBRISPEECH_LM}"
        fi
    fi
    if [ ! -f "${LIBRISPEECH_LM}" ]; then
        log "Error: ${LIBRISPEECH_LM} not found$(${download} && echo ": it could not be downloaded from ${LIBRISPEECH_LM_URL}" || echo " (--download false)")."
        log "Put librispeech-lm-norm.txt.gz (openslr.org resource 11) at ${LIBRISPEECH_LM}, or set LIBRISPEECH_LM in db.sh, or pass --lm_text false."
        exit 1
    fi
fi
for split in dev-clean dev-other test-clean test-other train-clean-100; do
    python -m espnet_distill.bin.prepare_librispeech split --root "${LIBRISPEECH}" --split "${split}" --out "data/${split//-/_}"
    utils/validate_data_dir.sh --no-audio "data/${split//-/_}"
done
if ${train_960}; then
    python -m espnet_distill.bin.prepare_librispeech split --root "${LIBRISPEECH}" \
        --split train-clean-100 train-clean-360 train-other-500 --out data/train_960
    utils/validate_data_dir.sh --no-audio data/train_960
fi
if ${librilight}; then
    fetch "Libri-light's fine-tuning sets" "${LIBRILIGHT}/1h" "${LIBRILIGHT}" "${LIBRILIGHT_URL}" \
        "Unpack librispeech_finetuning.tgz from Libri-light so that ${LIBRILIGHT}/ holds 1h/ and 9h/, or set LIBRILIGHT in db.sh, or pass --librilight false."
    for subset in 10min 1h 10h; do
        python -m espnet_distill.bin.prepare_librispeech librilight --root "${LIBRILIGHT}" --subset "${subset}" --out "data/train_${subset}"
        utils/validate_data_dir.sh --no-audio "data/train_${subset}"
    done
fi
log "Successfully finished. [elapsed=${SECONDS}s]"
