# Where the corpus audio lives. The synthetic corpus is generated here by stage 1.
SYNTH_EN=${SYNTH_EN:-downloads/synth_en}
