#!/usr/bin/env bash
# The paper's four claims, measured on the embedded corpus with fine-tuning seeds and
# matched-pairs significance tests, written to CLAIMS.md:
#   C1  L_disc helps low-resource fine-tuning (alpha 0 vs 0.4; L_disc types 1, 2, 3)
#   C2  the Fbank front-end: parameters, measured speed, WER cost (dt_fbank vs dt_cnn)
#   C3  deep & thin vs shallow & wide under whole-model fine-tuning (dt_cnn vs sw_cnn)
#   C4  distilled vs the same student from scratch (dt_fbank vs scratch), and the
#       teacher-as-frontend vs from scratch (is the scale large enough to tell?)
#   C5  beyond the paper: the teacher pruned to D&T's size while distilled (DPHuBERT's method)
#       vs D&T (pruned_dt vs dt_cnn, equal parameters)
#
#   local/claims.sh [--seeds "0 1 2"] [--finetune_set train_10min] [--claims_dir exp/claims]
#
# One claim alone: name its students and leave out the reference models it does not use, e.g. C5:
#   local/claims.sh --distill_configs "conf/distill/dt_cnn.yaml conf/claims/pruned_dt.yaml" \
#       --fbank_configs "" --asr_teacher false --asr_scratch_config "" --claims_dir exp/claims_c5 \
#       --only C5 --out CLAIMS_C5.md
#
# It reuses the recipe's data and teacher (./run.sh stages 1-2, run here if exp/teacher has no
# teacher.pt), then runs stages 2-6 of distill.sh into --claims_dir with every student of the
# claims, fine-tuned on --finetune_set with each seed. Stages resume like the recipe's.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

seeds="0 1 2"               # fine-tuning seeds of every model
finetune_set=train_10min    # the low-resource labelled set the claims are about
claims_dir=exp/claims       # experiment folder of the claims run
out=CLAIMS.md               # the table
distill_configs="conf/distill/dt_cnn.yaml conf/claims/dt_cnn_alpha0.yaml conf/claims/dt_cnn_type1.yaml conf/claims/dt_cnn_type3.yaml conf/claims/sw_cnn.yaml conf/claims/pruned_dt.yaml"
fbank_configs="conf/distill/dt_fbank.yaml"
asr_teacher=true                                # the teacher fine-tuned too (C4)
asr_scratch_config=conf/distill/dt_fbank.yaml   # the from-scratch model (C4); "" = none
only=""                                         # report these claims only, e.g. "C5" ("" = all)
help_message="Usage: $0 [--seeds \"0 1 2\"] [--finetune_set SET] [--claims_dir DIR] [--out CLAIMS.md]
    [--distill_configs \"...\"] [--fbank_configs \"...\"] [--asr_teacher true|false] [--asr_scratch_config CONFIG]
    [--only \"C5\"]"

_claims_args=""  # for the table's header
if [ $# -gt 0 ]; then _claims_args=$(printf '%q ' "$@"); fi
. ./path.sh
. utils/parse_options.sh

start=${SECONDS}
if [ ! -f exp/teacher/teacher.pt ]; then
    log "No exp/teacher/teacher.pt: running the recipe's stages 1-2 (data, teacher) first"
    ./run.sh --stage 1 --stop_stage 2
fi
mkdir -p "${claims_dir}"
python -m espnet_distill.bin.teacher_info --checkpoint exp/teacher/teacher.pt --write-yaml "${claims_dir}/teacher_source.yaml" > /dev/null

log "Claims run into ${claims_dir}: students ${distill_configs} ${fbank_configs}; seeds ${seeds}"
./run.sh --stage 2 --stop_stage 6 --expdir "${claims_dir}" \
    --teacher_config "${claims_dir}/teacher_source.yaml" \
    --distill_configs "${distill_configs}" --fbank_configs "${fbank_configs}" \
    --asr_teacher "${asr_teacher}" --asr_scratch_config "${asr_scratch_config}" \
    --finetune_sets "${finetune_set}" --asr_seeds "${seeds}" --results_md "${claims_dir}/RESULTS.md" \
    --export_onnx false  # the claims compare PyTorch decodings; the demo's run exports its models

python -m espnet_distill.bin.make_results claims --asr-dir "${claims_dir}/asr" \
    --benchmark "${claims_dir}/asr/benchmark.json" --finetune-set "${finetune_set}" --test-sets dev test \
    --elapsed "$(( SECONDS - start ))" --command "$0 ${_claims_args}" ${only:+--only ${only}} \
    --out "${out}"
log "Wrote ${out} [elapsed=$(( SECONDS - start ))s]"
