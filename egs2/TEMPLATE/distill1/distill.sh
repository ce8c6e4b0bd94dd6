#!/usr/bin/env bash
# The generic staged distillation recipe. Each corpus's run.sh calls it with its
# own options; see the README ("Recipe stages") for what each stage does.
#
#   1. data      local/data.sh writes Kaldi dirs under data/
#   2. teacher   make the teacher available (s3prl name, local checkpoint, or pretrain one)
#   3. distill   distill the students of --distill_configs
#   4. fbank     Fbank students with front-end adaptation (--fbank_configs)
#   5. asr       ESPnet ASR fine-tuning with each student as a trainable frontend
#   6. score     decode, score with sclite, write RESULTS.md
#
# A finished stage leaves ${expdir}/<stage>/.done holding the command that ran it;
# a rerun skips it unless --force true is given, the marker is removed, or the
# stage's options changed. ${expdir}/<stage>/reproduce.sh reruns it exactly.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

# General options
stage=1               # first stage to run
stop_stage=6          # last stage to run
force=false           # rerun stages even when their .done marker says they finished
nj=2                  # parallel jobs for data preparation and feature dumps
ngpu=0                # GPUs per training job (0 = CPU)
expdir=exp            # where models, logs and results go
datadir=data          # where Kaldi data dirs are

# Stage 1: data
local_data_opts=""    # options passed to local/data.sh

# Data sets
train_set=train       # unlabelled audio for teacher pretraining and distillation
valid_set=dev         # validation set
test_sets="dev test"  # sets to decode and score
finetune_sets=""      # labelled sets for ASR fine-tuning (default: train_set)

help_message=$(cat << EOF
Usage: $0 --stage <first> --stop_stage <last> [options]

Runs the distillation recipe stages (1 data, 2 teacher, 3 distill, 4 fbank,
5 asr, 6 score). Options are listed below with their current values.
EOF
)

log "$0 $*"
run_args=$(printf '%q ' "$0" "$@")
. utils/parse_options.sh
[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }

. ./path.sh
. ./cmd.sh

[ -n "${finetune_sets}" ] || finetune_sets=${train_set}

# stage_begin NUM NAME OPTIONS: 0 (run) when NUM is in [stage, stop_stage] and the stage
# is not finished with the same OPTIONS; otherwise 1 (skip).
stage_begin() {
    local num=$1 name=$2 opts=$3 marker=${expdir}/$2/.done
    [ "${stage}" -le "${num}" ] && [ "${stop_stage}" -ge "${num}" ] || return 1
    if [ -f "${marker}" ] && ! ${force}; then
        if [ "$(cat "${marker}")" = "${opts}" ]; then
            log "Stage ${num} (${name}): already done (${marker}); --force true or remove the marker to rerun"
            return 1
        fi
        log "Stage ${num} (${name}): options changed since the last run; rerunning"
    fi
    rm -f "${marker}"
    mkdir -p "${expdir}/${name}"
    {
        echo "#!/usr/bin/env bash"
        echo "# Reruns stage ${num} (${name}) exactly as it ran on $(date)."
        echo "cd $(printf '%q' "${PWD}") && ${run_args% } --stage ${num} --stop_stage ${num} --force true"
    } > "${expdir}/${name}/reproduce.sh"
    chmod +x "${expdir}/${name}/reproduce.sh"
    log "Stage ${num} (${name}): start"
    return 0
}

# stage_end NUM NAME OPTIONS: write the finished marker.
stage_end() {
    echo "$3" > "${expdir}/$2/.done"
    log "Stage $1 ($2): done"
}

# ---------------------------------------------------------------------------- 1. data
opts="local/data.sh ${local_data_opts}"
if stage_begin 1 data "${opts}"; then
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
    for x in ${train_set} ${valid_set} ${test_sets} ${finetune_sets}; do
        utils/validate_data_dir.sh --no-audio "${datadir}/${x}"
    done
    stage_end 1 data "${opts}"
fi

for num in 2 3 4 5 6; do
    if [ "${stage}" -le "${num}" ] && [ "${stop_stage}" -ge "${num}" ]; then
        log "Error: stage ${num} is not part of this version of the recipe yet (available: 1)"
        exit 1
    fi
done

log "Successfully finished. [elapsed=${SECONDS}s]"
