#!/usr/bin/env bash
# The generic staged distillation recipe. Each corpus's run.sh calls it with its
# own options; see the README ("Recipe stages") for what each stage does.
#
#   1. data      local/data.sh writes Kaldi dirs under data/
#   2. teacher   make the teacher available (s3prl name, local checkpoint, or pretrain one)
#   3. distill   distill the students of --distill_configs
#   4. fbank     Fbank students with front-end adaptation (--fbank_configs)
#   5. asr       dump the labelled sets (16 kHz files, normalised text, length filter), then
#                ESPnet ASR fine-tuning with each student as a trainable frontend
#   6. score     dump the test sets, decode, score with sclite, write RESULTS.md
#
# A finished stage leaves ${expdir}/<stage>/.done holding the options it ran with;
# a rerun skips it unless --force true is given, the marker is removed, or the
# stage's options changed (then the old results move to ${expdir}/<stage>.<time> and the
# stage starts afresh: nothing finished is overwritten).
# A stage killed midway resumes: its training jobs continue from their checkpoints.
# ${expdir}/<stage>/reproduce.sh reruns a stage exactly.
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
ngpu=0                # GPUs per training job and node (0 = CPU)
num_nodes=1           # nodes per training job (> 1 needs cmd_backend=slurm: srun starts ngpu processes per node)
expdir=exp            # where models, logs and results go
datadir=data          # where Kaldi data dirs are
dumpdir=dump          # where the ESPnet inputs go (raw/<set>: 16 kHz audio files; token lists; shapes)

# Stage 1: data
local_data_opts=""    # options passed to local/data.sh

# Stage 2: teacher
teacher_config=conf/teacher/pretrain_small.yaml  # backend: pretrain | local | s3prl (see conf/teacher/)

# Stages 3 and 4: students (one exp/distill/<config name> each)
distill_configs="conf/distill/dt_cnn.yaml"   # waveform-CNN students
fbank_configs="conf/distill/dt_fbank.yaml"   # Fbank students with front-end adaptation
distill_args=""                              # extra distill_train options, e.g. "--set train.max_steps=200"

# Stage 5: ESPnet ASR
asr_config=conf/asr/ctc.yaml                       # ESPnet training config (frontend: distilled)
asr_set_configs=""                                 # per fine-tuning set configs: "SET=CONFIG ..." (others: asr_config)
asr_protocols=finetune                             # ASR protocols, each on every fine-tuning set: finetune (the whole model trains; asr_config) and/or superb (SUPERB's: the frontend frozen, a weighted sum of its layers, a BLSTM and CTC; superb_config): exp/asr/<model>_<set>[_superb]
superb_config=conf/asr/superb.yaml                 # the ESPnet config of --asr_protocols superb
superb_sets=""                                     # the fine-tuning sets --asr_protocols superb trains on ("" = all)
asr_scratch_config=conf/distill/dt_fbank.yaml      # from-scratch baseline architecture ("" = none)
asr_teacher=true                                   # also fine-tune the teacher as a reference
asr_args=""                                        # extra options for espnet_distill.bin.asr_train
asr_seeds="0"                                      # fine-tuning seeds; several: exp/asr/<model>_<set>_seed<N>, mean and spread in RESULTS.md
token_type=char                                    # char | bpe
nbpe=100                                           # BPE vocabulary size (token_type=bpe; ESPnet's name)
bpe_size=""                                        # an older name of --nbpe (kept: it sets nbpe)
speed_perturb_factors=""                           # e.g. "0.9 1.0 1.1": fine-tune on <set>_sp, sox speed-perturbed copies
text_norm_opts="--case lower --punctuation remove" # transcript normalisation for training and scoring
min_wav_duration=0.1                               # fine-tuning utterances shorter than this (s) are dropped
max_wav_duration=20                                # fine-tuning utterances longer than this (s) are dropped (0: none)
audio_format=flac                                  # format of the dumped 16 kHz audio: flac | wav

# Stage 6: decoding and scoring
inference_config=conf/asr/decode_att.yaml          # beam search options for models with a decoder (ESPnet's name)
decode_att_config=""                               # an older name of --inference_config (kept: it sets it)
inference_args=""                                  # extra options of asr_inference (attention beam search)
inference_nj=2                                     # decoding jobs per test set and model (the set is split and merged)
inference_batch_size=8                             # utterances per beam search batch (asr_inference's --batch_size: one search over the batch, the hypotheses of one at a time given the same encoder output)
gpu_inference=auto                                 # decode on GPUs (jobs through cuda_cmd): true, false, or auto (when --ngpu > 0)
int8_inference=true                                # also decode CTC greedy with int8 linear layers (CPU): decode_ctc_greedy_int8_<set>
export_onnx=false                                  # also export each model for sherpa-onnx / ONNX Runtime (exp/asr/onnx/<model>) and decode with its fp32 and int8 graphs, one thread: decode_onnx_{fp32,int8}_<set>
grammar=""                                         # closed vocabulary: a file of allowed transcripts (one per line); also decode choosing the one of highest CTC likelihood: decode_ctc_grammar_<set>
use_lm=false                                       # also decode with shallow fusion of an ESPnet LM that stage 6 trains (${expdir}/lm, on the ASR token list): CTC prefix beam search + LM for CTC-only models (decode_ctc_beam_lm_<set>), attention + CTC + LM for the others (decode_att_beam_lm_<set>)
lm_config=conf/lm/rnn.yaml                         # the LM's espnet2.bin.lm_train config
lm_train_text=""                                   # LM training text: files of one sentence per line (plain or .gz) or data dirs (their text), normalised by --text_norm_opts ("" = the fine-tuning sets' data dirs)
lm_args=""                                         # extra options of espnet2.bin.lm_train
lm_weight=0.5                                      # the LM's weight in shallow fusion (ESPnet's name)
beam_size=""                                       # beam size of every beam search ("" = --inference_config's; ESPnet's name)
ngram_file=""                                      # also fuse a KenLM n-gram over the ASR tokens (ARPA or KenLM binary) with --use_lm (ESPnet's n-gram scorer; needs: pip install kenlm)
ngram_weight=0.9                                   # the n-gram's weight (ESPnet's name)
results_md=RESULTS.md                              # where stage 6 writes the summary table
inference_asr_model=auto                           # model file to decode in each experiment; auto: ESPnet's average of the keep_nbest_models best by the config's best_model_criterion (bin/experiment.py)

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
_run_args=$(printf '%q ' "$0" "$@")  # for reproduce.sh (a leading _: not an option)
. utils/parse_options.sh
[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }
# older option names: each sets the option it names
if [ -n "${bpe_size}" ]; then nbpe=${bpe_size}; log "--bpe_size ${bpe_size} (an older name): --nbpe ${nbpe}"; fi
if [ -n "${decode_att_config}" ]; then
    inference_config=${decode_att_config}
    log "--decode_att_config ${decode_att_config} (an older name): --inference_config ${inference_config}"
fi
for v in stage stop_stage; do  # a range that runs nothing is a mistake, not a success
    [[ "${!v}" =~ ^[1-6]$ ]] || { log "Error: --${v} must be a stage number 1-6, got '${!v}'"; exit 2; }
done
[ "${stage}" -le "${stop_stage}" ] || { log "Error: --stage ${stage} is after --stop_stage ${stop_stage}"; exit 2; }
if [ "${gpu_inference}" = auto ]; then
    if [ "${ngpu}" -gt 0 ]; then gpu_inference=true; else gpu_inference=false; fi
fi
for v in force asr_teacher gpu_inference int8_inference export_onnx use_lm; do
    [[ "${!v}" =~ ^(true|false)$ ]] || { log "Error: --${v} must be true or false, got '${!v}'"; exit 2; }
done

. ./path.sh
. ./cmd.sh
log "Training jobs take ${train_threads} CPU threads (${train_threads_why:-train_threads as given}); set train_threads to change it"

# Processes. Each long command of a stage runs in a process group of its own (in_group). A signal
# to the recipe (SIGINT, SIGTERM, SIGHUP) stops that whole group, and waits until it is gone,
# before anything is restored; a watchdog stops it when the recipe dies without a word (SIGKILL).
# The launchers stop their jobs in turn (utils/run.sh, utils/slurm.sh; their jobs watch them too).
_group=""
alive() { [ -r "/proc/$1/stat" ] && [[ "$(< "/proc/$1/stat")" != *") Z "* ]]; }  # alive PID (zombies: gone)
stop_group() {  # stop_group PGID: SIGTERM to the group, SIGKILL 20 s later; returns once it is gone
    local i
    kill -TERM -- "-$1" 2> /dev/null || return 0
    for i in $(seq 200); do kill -0 -- "-$1" 2> /dev/null || return 0; sleep 0.1; done
    log "Process group $1 ignored SIGTERM for 20 s: SIGKILL"
    kill -KILL -- "-$1" 2> /dev/null || true
}
in_group() {  # in_group CMD...: run CMD in a process group of its own and return its status
    local rc=0 watchdog
    set -m
    "$@" < /dev/null &
    _group=$!
    { while alive $$ && kill -0 -- "-${_group}" 2> /dev/null; do sleep 1; done
      alive $$ || stop_group "${_group}"; } < /dev/null &
    watchdog=$!
    set +m
    wait "${_group}" || rc=$?
    kill -- "-${watchdog}" 2> /dev/null || true
    stop_group "${_group}"  # anything the command left behind
    _group=""
    return "${rc}"
}
on_signal() {  # on_signal NAME NUMBER
    trap '' INT TERM HUP
    log "Got SIG$1: stopping the running processes first"
    [ -z "${_group}" ] || stop_group "${_group}"
    exit $((128 + $2))
}
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM
trap 'on_signal HUP 1' HUP

if [ "${ngpu}" -gt 0 ] && ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.device_count() > 0 else 1)'; then
    log "Error: --ngpu ${ngpu} but torch sees no usable CUDA device on $(hostname); use --ngpu 0 to train on CPU"
    exit 1
fi

[ -n "${finetune_sets}" ] || finetune_sets=${train_set}
# Training entry points: one process per GPU. One node: torchrun starts them; several nodes:
# utils/slurm.sh --num-nodes starts them with srun and sets RANK, WORLD_SIZE, LOCAL_RANK and
# MASTER_ADDR as torchrun would. ESPnet is then told that an external launcher runs it, and that
# some parameters may get no gradient (a frontend frozen for freeze_steps runs without autograd).
if [ "${num_nodes}" -gt 1 ]; then
    if [ "${cmd_backend:-local}" != slurm ]; then
        log "Error: --num_nodes ${num_nodes} needs cmd_backend=slurm (utils/slurm.sh starts the processes on each node)"
        exit 1
    fi
    python_launcher=python
    cuda_cmd="${cuda_cmd} --num-nodes ${num_nodes}"
    espnet_dist_opts="--ngpu 1 --multiprocessing_distributed false --unused_parameters true"
elif [ "${ngpu}" -gt 1 ]; then
    python_launcher="torchrun --standalone --nproc_per_node=${ngpu}"
    espnet_dist_opts="--ngpu 1 --multiprocessing_distributed false --unused_parameters true"
else
    python_launcher=python
    espnet_dist_opts="--ngpu ${ngpu}"
fi

# The stages' bookkeeping is bin/stage's (espnet_distill/stages.py: what each stage's key reads,
# the .done markers, moving finished results aside, reproduce.sh). It reads these options:
export stage stop_stage force expdir datadir results_md local_data_opts teacher_config distill_configs \
    fbank_configs distill_args asr_config asr_set_configs asr_protocols superb_config superb_sets asr_scratch_config asr_teacher asr_args asr_seeds \
    token_type nbpe speed_perturb_factors text_norm_opts min_wav_duration max_wav_duration inference_config \
    inference_args int8_inference export_onnx grammar inference_asr_model train_set valid_set test_sets finetune_sets \
    dumpdir use_lm lm_config lm_train_text lm_args lm_weight beam_size ngram_file ngram_weight inference_batch_size
export run_args=${_run_args}
# asr_config_for SET: the ESPnet config for fine-tuning on SET (asr_set_configs, else asr_config)
asr_config_for() { python -m espnet_distill.bin.stage asr-config "$1"; }
# The students of stages 3 and 4, and the options that name them
declare -A stage_configs=([3]="${distill_configs}" [4]="${fbank_configs}")
declare -A stage_configs_option=([3]=--distill_configs [4]=--fbank_configs)

# Every option and config a stage in range reads is checked here, before any stage moves earlier
# results aside: a mistyped name fails at once and leaves exp/ as it was.
check_file() {  # check_file OPTION FILE...: each FILE exists
    local f
    for f in "${@:2}"; do [ -f "${f}" ] || { log "Error: $1 ${f}: no such file"; exit 2; }; done
}
in_range() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
if in_range 2; then
    check_file --teacher_config "${teacher_config}"
    python -m espnet_distill.bin.config_get --teacher "${teacher_config}" backend > /dev/null \
        || { log "Error: --teacher_config ${teacher_config} is not a valid teacher config (see above)"; exit 2; }
fi
for num in 3 4; do
    in_range "${num}" || continue
    # shellcheck disable=SC2086
    check_file "${stage_configs_option[${num}]}" ${stage_configs[${num}]}
    for config in ${stage_configs[${num}]}; do  # the config with the --set overrides of --distill_args
        # shellcheck disable=SC2086
        python -m espnet_distill.bin.distill_train --config "${config}" --teacher - --train-dir - --valid-dir - \
            --outdir - ${distill_args} --check-config \
            || { log "Error: ${config} (with --distill_args '${distill_args}') does not check (see above)"; exit 2; }
    done
done
if in_range 5 || in_range 6; then
    [[ "${token_type}" =~ ^(char|bpe)$ ]] || { log "Error: --token_type must be char or bpe, got '${token_type}'"; exit 2; }
    asr_configs=$(python -m espnet_distill.bin.stage asr-configs) || { log "Error: --asr_protocols (see above)"; exit 2; }
    for ft in ${finetune_sets}; do check_file "--asr_config (for ${ft})" "$(asr_config_for "${ft}")"; done
    case " ${asr_protocols} " in *" superb "*) check_file --superb_config "${superb_config}" ;; esac
    [ -z "${asr_scratch_config}" ] || check_file --asr_scratch_config "${asr_scratch_config}"
fi
if in_range 5; then  # ESPnet's own parser reads each config of stage 5 with --asr_args
    for config in ${asr_configs}; do
        # shellcheck disable=SC2086
        if ! said=$(python -m espnet_distill.bin.asr_train --config "${config}" ${asr_args} --print_config 2>&1 > /dev/null); then
            echo "${said}" | tail -n 3 >&2
            log "Error: ${config} with --asr_args '${asr_args}' is refused by ESPnet's parser (see above)"
            exit 2
        fi
    done
fi
if in_range 6; then
    [ -z "${grammar}" ] || check_file --grammar "${grammar}"
    if ${use_lm}; then
        check_file --lm_config "${lm_config}"
        check_file --inference_config "${inference_config}"
        if [ "${stage}" -gt 1 ]; then  # (stage 1 may fetch it)
            for x in ${lm_train_text}; do [ -d "${x}" ] || check_file --lm_train_text "${x}"; done
        fi
        if [ -n "${ngram_file}" ]; then
            check_file --ngram_file "${ngram_file}"
            python -c 'import kenlm' 2> /dev/null \
                || { log "Error: --ngram_file needs KenLM's Python module, which is not installed: pip install kenlm"; exit 2; }
        fi
    elif [ -n "${ngram_file}" ]; then
        log "Error: --ngram_file is fused with the LM's beam search: give --use_lm true too"; exit 2
    fi
fi

# stage_begin NUM: 0 (run) when stage NUM is in range and not finished with the same key, else 1
stage_begin() {
    local said
    said=$(python -m espnet_distill.bin.stage begin "$1") || { log "Error: stage $1: bookkeeping failed (see above)"; exit 1; }
    [ "${said}" = run ]
}
stage_end() { python -m espnet_distill.bin.stage end "$1"; }

# keep_log FILE: a rerun writes a fresh FILE; the earlier run's is kept as FILE.1, FILE.2, ...
keep_log() {
    local n=1
    [ -f "$1" ] || return 0
    while [ -e "$1.${n}" ]; do n=$((n + 1)); done
    mv "$1" "$1.${n}"
}

# ---------------------------------------------------------------------------- 1. data
# A rerun of stage 1 must not lose the data dirs of the run before when it fails: they are copied
# aside first (the Kaldi dirs: their tables, not audio) and put back if the stage fails.
data_backup=""
restore_data() {  # restore_data WHY: put the dirs kept in ${data_backup} back into ${datadir}
    local b
    [ -n "${data_backup}" ] && [ -d "${data_backup}" ] || return 0
    for b in "${data_backup}"/*/; do
        [ -d "${b}" ] || continue
        b=${b%/}
        rm -rf "${datadir:?}/$(basename "${b}")"
        mv "${b}" "${datadir}/"
    done
    rm -rf "${data_backup}"
    log "Stage 1 $1: the data dirs of the previous run are restored in ${datadir}"
}
if stage_begin 1; then
    for b in "${expdir}"/data/.previous.*/; do  # left by a stage-1 run that was killed (SIGKILL) midway
        [ -d "${b}" ] || continue
        data_backup=${b%/}
        restore_data "was killed in an earlier run"
    done
    data_backup=""
    if [ -d "${datadir}" ]; then
        data_backup=$(mktemp -d "${expdir}/data/.previous.XXXXXX")
        for d in "${datadir}"/*/; do
            [ -f "${d}utt2spk" ] || [ -f "${d}wav.scp" ] || continue
            cp -a "${d%/}" "${data_backup}/"
        done
    fi
    trap 'restore_data failed' EXIT  # any failure or signal from here on (set -e) restores
    # shellcheck disable=SC2086
    in_group local/data.sh ${local_data_opts}
    for x in $(echo ${train_set} ${valid_set} ${test_sets} ${finetune_sets} | tr ' ' '\n' | sort -u); do
        # distillation needs audio only: the training set may come without transcripts
        text_opt=""
        case " ${valid_set} ${test_sets} ${finetune_sets} " in *" ${x} "*) ;; *) text_opt=--no-text ;; esac
        utils/validate_data_dir.sh --no-audio ${text_opt} "${datadir}/${x}"
        # durations once, here: training processes never measure the corpus themselves
        [ -f "${datadir}/${x}/utt2dur" ] || in_group utils/data/get_utt2dur.sh --nj "${nj}" "${datadir}/${x}"
    done
    trap - EXIT
    [ -z "${data_backup}" ] || rm -rf "${data_backup}"
    stage_end 1
fi

# ---------------------------------------------------------------------------- 2. teacher
# Writes ${expdir}/teacher/teacher.yaml, the teacher every later stage uses.
teacher_dir=${expdir}/teacher
# pretrain_iteration IT SOURCE: HuBERT iteration IT in ${teacher_dir}/iterIT: features of SOURCE (mfcc,
# or the previous iteration's teacher.pt, which it then starts from), k-means, masked prediction
pretrain_iteration() {
    local it=$1 source=$2 d=${teacher_dir}/iter$1 init_opt="" train_feats
    [ "${source}" = mfcc ] || init_opt="--init ${source}"
    mkdir -p "${d}/feats"
    log "Teacher iteration ${it}: features (${source}) of ${train_set} in ${nj} jobs, and of ${valid_set}"
    in_group ${train_cmd} JOB=1:"${nj}" "${d}/log/dump_train.JOB.log" \
        python -m espnet_distill.bin.teacher_pretrain dump --config "${teacher_config}" \
        --data-dir "${datadir}/${train_set}" --shard JOB --num-shards "${nj}" --out "${d}/feats/train.JOB.pt" \
        --source "${source}"
    in_group ${train_cmd} "${d}/log/dump_valid.log" \
        python -m espnet_distill.bin.teacher_pretrain dump --config "${teacher_config}" \
        --data-dir "${datadir}/${valid_set}" --out "${d}/feats/valid.1.pt" --source "${source}"
    train_feats=$(for n in $(seq "${nj}"); do printf '%s ' "${d}/feats/train.${n}.pt"; done)
    log "Teacher iteration ${it}: k-means (the config's kmeans section; log: ${d}/log/kmeans.log)"
    # shellcheck disable=SC2086
    in_group ${train_cmd} "${d}/log/kmeans.log" \
        python -m espnet_distill.bin.teacher_pretrain kmeans --config "${teacher_config}" --train-feats ${train_feats} \
        --label "train=$(echo ${train_feats} | tr ' ' ',')" "valid=${d}/feats/valid.1.pt" --outdir "${d}"
    log "Teacher iteration ${it}: masked-prediction pretraining (log: ${d}/train.log)"
    keep_log "${d}/train.log"
    # shellcheck disable=SC2086
    in_group ${cuda_cmd} "${d}/train.log" \
        ${python_launcher} -m espnet_distill.bin.teacher_pretrain train --config "${teacher_config}" \
        --train-dir "${datadir}/${train_set}" --valid-dir "${datadir}/${valid_set}" \
        --labels-dir "${d}" --outdir "${d}" ${init_opt}
}

if stage_begin 2; then
    # the teacher config, typed and with its defaults filled in by Python (a bad key fails here)
    backend=$(python -m espnet_distill.bin.config_get --teacher "${teacher_config}" backend)
    if [ "${backend}" = pretrain ]; then
        iterations=$(python -m espnet_distill.bin.config_get --teacher "${teacher_config}" iterations)
        source=mfcc
        for it in $(seq "${iterations}"); do
            pretrain_iteration "${it}" "${source}"
            source=${teacher_dir}/iter${it}/teacher.pt
        done
        for f in teacher.pt summary.json curves.png curves.json; do
            cp "${teacher_dir}/iter${iterations}/${f}" "${teacher_dir}/${f}"
        done
        log "Teacher summary: $(tr -d '\n ' < "${teacher_dir}/summary.json")"
        python -m espnet_distill.bin.teacher_info --checkpoint "${teacher_dir}/teacher.pt" \
            --json "${teacher_dir}/info.json" --write-yaml "${teacher_dir}/teacher.yaml"
    else
        # A local checkpoint (any format) or an s3prl HuBERT upstream is written once in our format,
        # exp/teacher/teacher.pt, which every later stage reads (the s3prl upstream is checked
        # against s3prl's own forward pass). Other s3prl upstreams are used through s3prl.
        mkdir -p "${teacher_dir}"
        rm -f "${teacher_dir}/teacher.pt"
        cp "${teacher_config}" "${teacher_dir}/source.yaml"
        python -m espnet_distill.bin.teacher_info --config "${teacher_config}" --json "${teacher_dir}/info.json" \
            --export "${teacher_dir}/teacher.pt" --write-yaml "${teacher_dir}/teacher.yaml"
    fi
    stage_end 2
fi

# ---------------------------------------------------------------------------- 3, 4. distill
# distill_one NAME CONFIG: train exp/distill/NAME from the stage-2 teacher.
distill_one() {
    local name=$1 config=$2 d=${expdir}/distill/$1
    mkdir -p "${d}"
    log "Distilling ${name} (${config}); log: ${d}/train.log"
    keep_log "${d}/train.log"
    # shellcheck disable=SC2086
    in_group ${cuda_cmd} "${d}/train.log" \
        ${python_launcher} -m espnet_distill.bin.distill_train --config "${config}" \
        --teacher "${teacher_dir}/teacher.yaml" --train-dir "${datadir}/${train_set}" \
        --valid-dir "${datadir}/${valid_set}" --outdir "${d}" ${distill_args}
    log "${name}: $(python -m espnet_distill.bin.config_get "${d}/summary.json" valid)"
}

for num in 3 4; do
    if stage_begin "${num}"; then
        [ -f "${teacher_dir}/teacher.yaml" ] || { log "Error: no ${teacher_dir}/teacher.yaml: run stage 2 first"; exit 1; }
        for config in ${stage_configs[${num}]}; do
            distill_one "$(basename "${config}" .yaml)" "${config}"
        done
        stage_end "${num}"
    fi
done

# ---------------------------------------------------------------------------- 5. asr
# dump_set SET FILTER: ${dumpdir}/raw/SET from ${datadir}/SET, in the form ESPnet's sound reader
# takes (one 16 kHz mono file per utterance: pipes, segments, flac and other rates resolved by our
# reader), text normalised by ${text_norm_opts}; FILTER=true drops utterances outside
# [min_wav_duration, max_wav_duration] seconds or with empty text, and logs the counts (the list
# is in ${dumpdir}/raw/SET/dropped). Skipped when done with the same inputs and options; a
# killed dump resumes; a changed source dir is dumped again from scratch.
dump_set() {
    local x=$1 filter=$2 out=${dumpdir}/raw/$1 src=${datadir}/$1 audio_key opts
    [ -f "${src}/text" ] || { log "Error: ${src}/text not found: sets for fine-tuning and scoring need transcripts"; exit 1; }
    audio_key="$(python -m espnet_distill.bin.data_dir key --tables wav.scp,utt2spk,segments "${src}") ${nj} ${audio_format}"
    opts="${audio_key} $(sha256sum < "${src}/text" | cut -c1-16) ${filter} ${min_wav_duration} ${max_wav_duration} ${text_norm_opts}"
    if [ -f "${out}/.done" ] && [ "$(cat "${out}/.done")" = "${opts}" ]; then
        return 0
    fi
    if [ -f "${out}/.audio_key" ] && [ "$(cat "${out}/.audio_key")" != "${audio_key}" ]; then
        log "${src} changed since ${out} was dumped: dumping it again"
        rm -rf "${out}"
    fi
    rm -f "${out}/.done"
    mkdir -p "${out}/log"
    echo "${audio_key}" > "${out}/.audio_key"
    log "Dumping ${src} to ${out} (16 kHz ${audio_format}, ${nj} jobs; log: ${out}/log)"
    in_group ${train_cmd} JOB=1:"${nj}" "${out}/log/audio.JOB.log" \
        python -m espnet_distill.bin.dump_data_dir audio --data-dir "${src}" --out "${out}" \
        --shard JOB --num-shards "${nj}" --audio-format "${audio_format}"
    # shellcheck disable=SC2086
    python -m espnet_distill.bin.dump_data_dir finish --data-dir "${src}" --out "${out}" --num-shards "${nj}" \
        --audio-format "${audio_format}" --filter "${filter}" --min-seconds "${min_wav_duration}" \
        --max-seconds "${max_wav_duration}" ${text_norm_opts}
    echo "${opts}" > "${out}/.done"
}

# One ESPnet model per (frontend, fine-tuning set): exp/asr/<frontend>_<set>. Frontends: every
# student of stages 3-4, the from-scratch baseline (the --asr_scratch_config architecture,
# random weights, no distillation) and the teacher itself.
asr_dir=${expdir}/asr
raw=${dumpdir}/raw
token_dir=${dumpdir}/token_list/${token_type}
bpe_opt=""
[ "${token_type}" = bpe ] && bpe_opt="--bpe-model ${token_dir}/bpe.model"

asr_frontends() {  # "name checkpoint" lines
    local config
    for config in ${distill_configs} ${fbank_configs}; do
        echo "$(basename "${config}" .yaml) ${expdir}/distill/$(basename "${config}" .yaml)/student.pt"
    done
    [ -z "${asr_scratch_config}" ] || echo "scratch ${asr_dir}/scratch_init/student.pt"
    if ${asr_teacher}; then
        if [ -f "${teacher_dir}/teacher.pt" ]; then
            echo "teacher ${teacher_dir}/teacher.pt"
        else  # a teacher that is not a HuBERT (stage 2 said why in info.json)
            log "Warning: no ${teacher_dir}/teacher.pt: the teacher-as-frontend model is left out" \
                "($(python -m espnet_distill.bin.config_get "${teacher_dir}/info.json" export_error 'see stage 2'))"
        fi
    fi
}

# asr_runs: one "name checkpoint set seed protocol dir config" line per ASR model of stages 5 and 6: each
# frontend, fine-tuning set, protocol (--asr_protocols; bin/stage asr-runs) and seed
asr_runs() {
    local name ckpt ft protocol suffix config seed
    while read -r name ckpt <&3; do
        for ft in ${finetune_sets}; do
            while read -r protocol suffix config <&4; do
                [ "${suffix}" != - ] || suffix=""
                for seed in ${asr_seeds}; do
                    echo "${name} ${ckpt} ${ft} ${seed} ${protocol} ${asr_dir}/${name}_${ft}${suffix}$(seed_suffix "${seed}") ${config}"
                done
            done 4< <(python -m espnet_distill.bin.stage asr-runs "${ft}")
        done
    done 3< <(asr_frontends)
}

# seed_suffix SEED: "" with one fine-tuning seed, "_seed<SEED>" with several
seed_suffix() {
    # shellcheck disable=SC2086
    if [ "$(echo ${asr_seeds} | wc -w)" -gt 1 ]; then echo "_seed$1"; fi
}

# ft_data SET: the data dir a fine-tuning set trains on (SET, or SET_sp with speed perturbation)
ft_data() {
    if [ -n "${speed_perturb_factors}" ]; then echo "$1_sp"; else echo "$1"; fi
}

# speed_perturb SET: ${datadir}/SET_sp, copies of SET at each of --speed_perturb_factors, combined
# (as ESPnet's asr.sh does)
speed_perturb() {
    local x=$1 f parts=()
    log "Speed perturbation of ${x}: factors ${speed_perturb_factors} -> ${datadir}/${x}_sp"
    for f in ${speed_perturb_factors}; do
        rm -rf "${datadir}/${x}_sp${f}"
        if [ "${f}" = 1.0 ] || [ "${f}" = 1 ]; then
            utils/copy_data_dir.sh --utt-prefix "sp${f}-" --spk-prefix "sp${f}-" "${datadir}/${x}" "${datadir}/${x}_sp${f}"
        else
            utils/perturb_data_dir_speed.sh "${f}" "${datadir}/${x}" "${datadir}/${x}_sp${f}"
        fi
        parts+=("${datadir}/${x}_sp${f}")
    done
    rm -rf "${datadir}/${x}_sp"
    utils/combine_data_dir.sh "${datadir}/${x}_sp" "${parts[@]}"
    rm -rf "${parts[@]}"
}

# finetune_one NAME CHECKPOINT SET SEED DIR CONFIG: ESPnet training of DIR with CONFIG, the frontend
# CHECKPOINT, on SET with SEED
finetune_one() {
    local name=$1 ckpt=$2 ft=$3 seed=$4 d=$5 config=$6 tr
    tr=$(ft_data "${ft}")
    log "ASR fine-tuning ${name} on ${tr} (${config}, seed ${seed}); log: ${d}/train.log"
    mkdir -p "${d}"
    keep_log "${d}/train.log"
    # shellcheck disable=SC2086
    in_group ${cuda_cmd} "${d}/train.log" \
        ${python_launcher} -m espnet_distill.bin.asr_train --config "${config}" \
        --frontend_conf "checkpoint=${ckpt}" --output_dir "${d}" ${espnet_dist_opts} \
        --token_type "${token_type}" --token_list "${token_dir}/tokens.txt" \
        $([ "${token_type}" = bpe ] && echo "--bpemodel ${token_dir}/bpe.model") \
        --use_preprocessor true --resume true \
        --train_data_path_and_name_and_type "${raw}/${tr}/wav.scp,speech,sound" \
        --train_data_path_and_name_and_type "${raw}/${tr}/text,text,text" \
        --valid_data_path_and_name_and_type "${raw}/${valid_set}/wav.scp,speech,sound" \
        --valid_data_path_and_name_and_type "${raw}/${valid_set}/text,text,text" \
        --train_shape_file "${dumpdir}/shapes/${tr}/speech_shape" \
        --train_shape_file "${dumpdir}/shapes/${tr}/text_shape.${token_type}" \
        --valid_shape_file "${dumpdir}/shapes/${valid_set}/speech_shape" \
        --valid_shape_file "${dumpdir}/shapes/${valid_set}/text_shape.${token_type}" ${asr_args} \
        --seed "${seed}"
}

if stage_begin 5; then
    for x in ${finetune_sets}; do
        [ -z "${speed_perturb_factors}" ] || speed_perturb "${x}"
        dump_set "$(ft_data "${x}")" true
    done
    case " ${finetune_sets} " in *" ${valid_set} "*) ;; *) dump_set "${valid_set}" false ;; esac
    mkdir -p "${token_dir}"
    # shellcheck disable=SC2046
    python -m espnet_distill.bin.asr_prep tokens --token-type "${token_type}" --bpe-size "${nbpe}" \
        --text $(for x in ${finetune_sets}; do printf '%s ' "${raw}/$(ft_data "${x}")/text"; done) --out "${token_dir}"
    for x in $(for y in ${finetune_sets}; do ft_data "${y}"; done) ${valid_set}; do
        # shellcheck disable=SC2086
        python -m espnet_distill.bin.asr_prep shapes --data-dir "${raw}/${x}" --token-type "${token_type}" \
            ${bpe_opt} --out "${dumpdir}/shapes/${x}"
    done
    if [ -n "${asr_scratch_config}" ]; then
        log "From-scratch baseline: ${asr_scratch_config} with random weights"
        in_group ${train_cmd} "${asr_dir}/scratch_init/init.log" \
            python -m espnet_distill.bin.distill_train --init-only --config "${asr_scratch_config}" \
            --teacher "${teacher_dir}/teacher.yaml" --train-dir "${datadir}/${train_set}" \
            --valid-dir "${datadir}/${valid_set}" --outdir "${asr_dir}/scratch_init"
    fi
    while read -r name ckpt ft seed protocol d config <&5; do  # fd 5: the jobs inside must not eat the list from stdin
        finetune_one "${name}" "${ckpt}" "${ft}" "${seed}" "${d}" "${config}"
    done 5< <(asr_runs)
    stage_end 5
fi

# ---------------------------------------------------------------------------- 6. score
# score_hyps OUT SET: score OUT/text against SET (sclite WER and CER into OUT)
score_hyps() {
    # shellcheck disable=SC2086
    python -m espnet_distill.bin.score --ref "${raw}/$2/text" --hyp "$1/text" \
        --utt2spk "${raw}/$2/utt2spk" --outdir "$1" ${text_norm_opts}
}

# ctc_decode EXP MODEL KIND LAUNCHER WHAT [asr_decode options]: CTC decoding of every test set with
# the model file MODEL of the experiment EXP, merged into EXP/decode_KIND_<set>/text and scored. Each
# of the ${ctc_nj} jobs decodes its part of every set in one process (ESPnet's start-up is seconds
# per process).
ctc_decode() {
    local exp=$1 model=$2 kind=$3 launcher=$4 what=$5 n x out dirs="" outs=""
    shift 5
    for x in ${test_sets}; do
        rm -rf "${exp}/decode_${kind}_${x}/split"
        mkdir -p "${exp}/decode_${kind}_${x}/split"
        dirs+=" ${raw}/${x}"
        outs+=" ${exp}/decode_${kind}_${x}/split/text.JOB"
    done
    log "Decoding ${test_sets} with ${exp##*/} (${what}, ${ctc_nj} jobs)"
    # shellcheck disable=SC2086
    in_group ${launcher} JOB=1:"${ctc_nj}" "${exp}/decode_log/${kind}.JOB.log" \
        python -m espnet_distill.bin.asr_decode --asr-config "${exp}/config.yaml" --asr-model "${model}" \
        --data-dir ${dirs} --out ${outs} --shard JOB --num-shards "${ctc_nj}" "$@" ${bpe_opt}
    for x in ${test_sets}; do
        out=${exp}/decode_${kind}_${x}
        for n in $(seq "${ctc_nj}"); do cat "${out}/split/text.${n}"; done | sort > "${out}/text"
        score_hyps "${out}" "${x}"
    done
}

# beam_decode EXP MODEL SET KIND [asr_inference options]: espnet2's beam search (asr_inference,
# --inference_config, then the options given, --beam_size, --inference_args) of SET with the model
# file MODEL of EXP in ${set_nj[SET]} jobs of --inference_batch_size batches, merged into
# EXP/decode_KIND_SET/text and scored
beam_decode() {
    local exp=$1 model=$2 x=$3 kind=$4 n out=$1/decode_$4_$3 x_nj=${set_nj[$3]}
    shift 4
    log "Decoding ${x} with ${exp##*/} (${kind//_/ }, ${x_nj} jobs, ${infer_device})"
    rm -rf "${out}/split"
    mkdir -p "${out}/split"
    # shellcheck disable=SC2046
    utils/split_scp.sh "${raw}/${x}/wav.scp" $(for n in $(seq "${x_nj}"); do echo "${out}/split/keys.${n}"; done)
    # shellcheck disable=SC2086
    in_group ${infer_cmd} JOB=1:"${x_nj}" "${out}/log/decode.JOB.log" \
        python -m espnet_distill.bin.asr_inference --config "${inference_config}" \
        --asr_train_config "${exp}/config.yaml" --asr_model_file "${model}" \
        --data_path_and_name_and_type "${raw}/${x}/wav.scp,speech,sound" \
        --key_file "${out}/split/keys.JOB" --output_dir "${out}/split/output.JOB" --ngpu "${infer_ngpu}" \
        --batch_size "${inference_batch_size}" "$@" $([ -z "${beam_size}" ] || echo "--beam_size ${beam_size}") \
        ${inference_args}
    for n in $(seq "${x_nj}"); do cat "${out}/split/output.${n}/1best_recog/text"; done | sort > "${out}/text"
    score_hyps "${out}" "${x}"
}

# train_lm: the LM of --use_lm in ${lm_dir}: ESPnet's lm_train on --lm_train_text (else the
# fine-tuning sets' transcripts), normalised as the transcripts are, with the ASR models' token
# list, selected on ${valid_set}; its perplexity there in the log and in ${lm_dir}/ppl_${valid_set}.
# Kept while its inputs stay the same (a marker of its own: bin/stage begin lm); a killed run
# resumes from its checkpoint.
lm_dir=${expdir}/lm
train_lm() {
    local x texts="" lm_model said
    said=$(python -m espnet_distill.bin.stage begin lm) || { log "Error: the LM step: bookkeeping failed (see above)"; exit 1; }
    [ "${said}" = run ] || return 0
    mkdir -p "${lm_dir}/data"
    if [ -n "${lm_train_text}" ]; then
        texts=${lm_train_text}
    else  # the sets as given, not their speed-perturbed copies
        for x in ${finetune_sets}; do texts+=" ${datadir}/${x}"; done
    fi
    log "LM text: ${texts} -> ${lm_dir}/data/train.text"
    # shellcheck disable=SC2086
    python -m espnet_distill.bin.asr_prep lm-text --text ${texts} --out "${lm_dir}/data/train.text" ${text_norm_opts}
    # shellcheck disable=SC2086
    python -m espnet_distill.bin.asr_prep text-shape --text "${lm_dir}/data/train.text" --token-type "${token_type}" \
        ${bpe_opt} --token-list "${token_dir}/tokens.txt" --out "${lm_dir}/data/train.shape"
    log "LM training (${lm_config}); log: ${lm_dir}/train.log"
    keep_log "${lm_dir}/train.log"
    # shellcheck disable=SC2086
    in_group ${cuda_cmd} "${lm_dir}/train.log" \
        ${python_launcher} -m espnet2.bin.lm_train --config "${lm_config}" --output_dir "${lm_dir}" ${espnet_dist_opts} \
        --token_type "${token_type}" --token_list "${token_dir}/tokens.txt" \
        $([ "${token_type}" = bpe ] && echo "--bpemodel ${token_dir}/bpe.model") \
        --use_preprocessor true --resume true \
        --train_data_path_and_name_and_type "${lm_dir}/data/train.text,text,text" \
        --valid_data_path_and_name_and_type "${raw}/${valid_set}/text,text,text" \
        --train_shape_file "${lm_dir}/data/train.shape" \
        --valid_shape_file "${dumpdir}/shapes/${valid_set}/text_shape.${token_type}" \
        --fold_length 150 ${lm_args}  # batch_type folded: halve batches of longer texts (asr.sh's lm_fold_length)
    lm_model=$(python -m espnet_distill.bin.experiment model-file "${lm_dir}")
    in_group ${decode_cmd} "${lm_dir}/ppl_${valid_set}/log" \
        python -m espnet2.bin.lm_calc_perplexity --ngpu 0 \
        --data_path_and_name_and_type "${raw}/${valid_set}/text,text,text" --train_config "${lm_dir}/config.yaml" \
        --model_file "${lm_model}" --output_dir "${lm_dir}/ppl_${valid_set}"
    log "LM perplexity on ${valid_set}: $(cat "${lm_dir}/ppl_${valid_set}/ppl")"
    python -m espnet_distill.bin.stage end lm
}

# onnx_decode EXP MODEL: EXP with its model file MODEL exported to ${asr_dir}/onnx/<EXP's name>
# (bin/export --to sherpa-onnx) and every test set decoded by the folder's own transcribe.py (no
# torch), fp32 and int8, one thread, one utterance at a time: EXP/decode_onnx_{fp32,int8}_<set>/
# {text,stats.json} (stats: real-time factor, peak memory).
onnx_decode() {
    local exp=$1 model=$2 out=${asr_dir}/onnx/${1##*/} kind x dir
    log "Exporting ${exp##*/} for sherpa-onnx / ONNX Runtime: ${out}"
    python -m espnet_distill.bin.export --to sherpa-onnx "${exp}" "${out}" --model-file "${model}" --overwrite
    for kind in fp32 int8; do
        for x in ${test_sets}; do
            dir=${exp}/decode_onnx_${kind}_${x}
            mkdir -p "${dir}"
            log "Decoding ${x} with ${out} (${kind}, ${out}/transcribe.py)"
            python "${out}/transcribe.py" --scp "${raw}/${x}/wav.scp" --out "${dir}/text" --stats "${dir}/stats.json" \
                --threads 1 $([ "${kind}" = fp32 ] || echo --int8)
            score_hyps "${dir}" "${x}"
        done
    done
}

# decode_model EXP PROTOCOL: every decoding of the ASR experiment EXP, then EXP/RESULTS.md. The
# SUPERB protocol's models are probes of a frozen student, not for deployment: no ONNX export.
decode_model() {
    local exp=$1 protocol=$2 x model has_decoder
    model=$(python -m espnet_distill.bin.experiment model-file "${exp}" --name "${inference_asr_model}")
    has_decoder=$(python -m espnet_distill.bin.experiment has-decoder "${exp}")
    ctc_decode "${exp}" "${model}" ctc_greedy "${infer_cmd}" "CTC greedy, ${infer_device}" --device "${infer_device}"
    if [ -n "${grammar}" ]; then  # the transcript of the grammar of highest CTC likelihood
        ctc_decode "${exp}" "${model}" ctc_grammar "${infer_cmd}" "CTC, grammar ${grammar}, ${infer_device}" \
            --device "${infer_device}" --grammar "${grammar}"
    fi
    if ${int8_inference}; then  # as a CPU deployment runs it: int8 linear layers
        ctc_decode "${exp}" "${model}" ctc_greedy_int8 "${decode_cmd}" "CTC greedy, int8 linear layers, cpu" \
            --device cpu --quantize int8
    fi
    for x in ${test_sets}; do
        if ${has_decoder}; then  # CTC-only models have no decoder
            beam_decode "${exp}" "${model}" "${x}" att_beam
            ! ${use_lm} || beam_decode "${exp}" "${model}" "${x}" att_beam_lm "${lm_opts[@]}"
        elif ${use_lm}; then  # CTC prefix beam search
            beam_decode "${exp}" "${model}" "${x}" ctc_beam_lm --ctc_weight 1.0 "${lm_opts[@]}"
        fi
    done
    if ${export_onnx} && [ "${protocol}" = finetune ]; then onnx_decode "${exp}" "${model}"; fi
    python -m espnet_distill.bin.make_results exp-table --exp "${exp}" --out "${exp}/RESULTS.md"
}

if stage_begin 6; then
    for x in ${test_sets}; do
        case " ${finetune_sets} " in
            *" ${x} "*) log "Warning: ${x} is also a fine-tuning set: it is scored on its filtered dump" ;;
            *) dump_set "${x}" false ;;
        esac
    done
    if ${gpu_inference}; then infer_cmd=${cuda_cmd}; infer_device=cuda; infer_ngpu=1
    else infer_cmd=${decode_cmd}; infer_device=cpu; infer_ngpu=0; fi
    declare -A set_nj  # decoding jobs per test set: no more than it has utterances
    ctc_nj=1           # CTC decoding takes every set in each job: as many jobs as the largest set's
    for x in ${test_sets}; do
        n_utts=$(wc -l < "${raw}/${x}/wav.scp")
        set_nj[${x}]=$(( inference_nj < n_utts ? inference_nj : n_utts ))
        ctc_nj=$(( set_nj[${x}] > ctc_nj ? set_nj[${x}] : ctc_nj ))
    done
    lm_opts=()  # asr_inference's shallow fusion options (--use_lm)
    if ${use_lm}; then
        train_lm
        lm_model=$(python -m espnet_distill.bin.experiment model-file "${lm_dir}")
        lm_opts=(--lm_train_config "${lm_dir}/config.yaml" --lm_file "${lm_model}" --lm_weight "${lm_weight}")
        if [ -n "${ngram_file}" ]; then
            python -m espnet_distill.bin.asr_prep check-ngram --ngram-file "${ngram_file}" --token-list "${token_dir}/tokens.txt"
            lm_opts+=(--ngram_file "${ngram_file}" --ngram_weight "${ngram_weight}")
        fi
    fi
    frontend_ckpts=""
    while read -r name ckpt ft seed protocol d config <&5; do
        case " ${frontend_ckpts} " in *" ${ckpt} "*) ;; *) frontend_ckpts+=" ${ckpt}" ;; esac
        decode_model "${d}" "${protocol}"
    done 5< <(asr_runs)
    log "Benchmarking the frontends (forward time per second of audio)"
    # shellcheck disable=SC2086
    python -m espnet_distill.bin.benchmark --checkpoint ${frontend_ckpts} --batch-sizes 1 $(! ${int8_inference} || echo --int8) \
        --json "${asr_dir}/benchmark.json" --markdown "${asr_dir}/benchmark.md"
    python -m espnet_distill.bin.make_results summary --asr-dir "${asr_dir}" --benchmark "${asr_dir}/benchmark.json" \
        --test-sets ${test_sets} $(! ${use_lm} || echo "--lm-dir ${lm_dir}") --out "${results_md}"
    stage_end 6
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
