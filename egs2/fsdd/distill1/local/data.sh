#!/usr/bin/env bash
# Stage 1 for FSDD: real human speech (isolated English digits, 6 speakers, 8 kHz).
#   data/fsdd_train  4 speakers (labelled fine-tuning set, and unlabelled audio for the teacher)
#   data/fsdd_dev    1 speaker;  data/fsdd_test: the held-out sixth speaker
#   data/train, dev, test        the synthetic English corpus (egs2/synth_en's local/data.sh)
#   data/train_8000hz            the synthetic train set band-limited like FSDD (--synth_rate)
#   data/train_pretrain          synthetic train + FSDD train audio: teacher and distillation data
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

train_speakers=jackson,theo,nicolas,yweweler
dev_speakers=lucas
test_speakers=george
synth_opts="--train_hours 1.0 --dev_utts 100 --test_utts 100 --lowres '' --nj 2"  # the synthetic part
synth_rate=8000   # the synthetic part joins the teacher's data at FSDD's sample rate (16000: as synthesized)
help_message="Usage: $0 [options]   (FSDD from db.sh's FSDD; see the options below)"

. ./path.sh
. ./db.sh
. utils/parse_options.sh

if [ ! -d "${FSDD}" ]; then
    clone=downloads/free-spoken-digit-dataset
    if [ ! -d "${clone}/recordings" ]; then
        log "${FSDD} not found: cloning ${FSDD_URL} into ${clone}"
        rm -rf "${clone}.partial"
        if ! git clone --quiet --depth 1 "${FSDD_URL}" "${clone}.partial"; then
            rm -rf "${clone}.partial"
            log "Error: cannot clone ${FSDD_URL} (no network?). Put FSDD's recordings/ folder (files like 0_george_0.wav) at ${FSDD}, or set FSDD in db.sh to where it is."
            exit 1
        fi
        mv "${clone}.partial" "${clone}"
    fi
    FSDD=${clone}/recordings
fi
log "Synthetic English corpus for teacher pretraining"  # after FSDD is found: a missing corpus fails at once
eval "../../synth_en/distill1/local/data.sh ${synth_opts}"
log "FSDD from ${FSDD}: train ${train_speakers}, dev ${dev_speakers}, test ${test_speakers}"
python -m espnet_distill.bin.prepare_fsdd --recordings "${FSDD}" --data-root data \
    --set "fsdd_train=${train_speakers}" --set "fsdd_dev=${dev_speakers}" --set "fsdd_test=${test_speakers}"
for x in fsdd_train fsdd_dev fsdd_test; do
    utils/validate_data_dir.sh "data/${x}"
done
synth_train=data/train
if [ "${synth_rate}" != 16000 ]; then
    synth_train=data/train_${synth_rate}hz
    log "Synthetic train at ${synth_rate} Hz like FSDD's recordings (band-limited copies): ${synth_train}"
    rm -rf "${synth_train}"
    python -m espnet_distill.bin.dump_data_dir audio --data-dir data/train --out "${synth_train}" --rate "${synth_rate}"
    python -m espnet_distill.bin.dump_data_dir finish --data-dir data/train --out "${synth_train}" \
        --filter false --case keep --punctuation keep
fi
rm -rf data/train_pretrain
utils/combine_data_dir.sh data/train_pretrain "${synth_train}" data/fsdd_train
utils/validate_data_dir.sh --no-audio data/train_pretrain
python -m espnet_distill.bin.synth_corpus stats --data-root data --sets train fsdd_train fsdd_dev fsdd_test \
    --train-set fsdd_train
log "Successfully finished. [elapsed=${SECONDS}s]"
