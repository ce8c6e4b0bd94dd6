#!/usr/bin/env bash
# Stage 1 of the embedded recipe: synthesize the English read-speech corpus with
# espeak-ng and sox and write validated Kaldi data dirs:
#   data/train, data/dev, data/test            (disjoint speakers and sentences)
#   data/train_<name> for each --lowres entry  (nested random subsets of train)
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

seed=0            # the corpus is a deterministic function of the seed and the sizes
train_hours=1.0   # approximate hours of training audio
dev_utts=200      # utterances in dev
test_utts=200     # utterances in test
train_speakers=12
dev_speakers=2
test_speakers=2
lowres="30min:1800 10min:600"  # nested labelled subsets of train, "name:seconds", largest first
reverb_prob=0.0   # fraction of utterances with reverberation (sox reverb)
noise_prob=0.0    # fraction of utterances with additive noise
nj=2              # parallel synthesis jobs
help_message="Usage: $0 [options]   (synthesizes the corpus into data/)"

. ./path.sh
. ./cmd.sh
. ./db.sh
. utils/parse_options.sh

wavs=${SYNTH_EN}
plan=data/local/plan
mkdir -p "${plan}" "${wavs}"

log "Planning the corpus (seed ${seed}, ${train_hours} h of train)"
python -m espnet_distill.bin.synth_corpus plan --out "${plan}" --seed "${seed}" \
    --train-hours "${train_hours}" --dev-utts "${dev_utts}" --test-utts "${test_utts}" \
    --train-speakers "${train_speakers}" --dev-speakers "${dev_speakers}" --test-speakers "${test_speakers}" \
    --reverb-prob "${reverb_prob}" --noise-prob "${noise_prob}"

for x in train dev test; do
    split_specs=()
    for n in $(seq "${nj}"); do split_specs+=("${plan}/${x}/spec.${n}.scp"); done
    utils/split_scp.sh "${plan}/${x}/spec.scp" "${split_specs[@]}"
    log "Synthesizing ${x} in ${nj} jobs (logs: ${plan}/log/synth_${x}.*.log)"
    ${train_cmd} JOB=1:"${nj}" "${plan}/log/synth_${x}.JOB.log" \
        python -m espnet_distill.bin.synth_corpus synth --spec "${plan}/${x}/spec.JOB.scp" \
        --wav-dir "${wavs}/${x}" --seed "${seed}"
    python -m espnet_distill.bin.synth_corpus dir --spec "${plan}/${x}/spec.scp" \
        --wav-dir "${wavs}/${x}" --data-dir "data/${x}" --seed "${seed}"
    utils/validate_data_dir.sh "data/${x}"
done

src=data/train
for entry in ${lowres}; do
    name=${entry%%:*}
    seconds=${entry##*:}
    log "Labelled subset data/train_${name}: ${seconds} s drawn from ${src}"
    rm -rf "data/train_${name}"
    utils/subset_data_dir.sh --seconds "${seconds}" --seed "${seed}" "${src}" "data/train_${name}"
    utils/validate_data_dir.sh --no-audio "data/train_${name}"
    src=data/train_${name}
done

sets="train dev test"
for entry in ${lowres}; do sets+=" train_${entry%%:*}"; done
# shellcheck disable=SC2086
python -m espnet_distill.bin.synth_corpus stats --data-root data --sets ${sets} --json data/local/stats.json
log "Successfully finished. [elapsed=${SECONDS}s]"
