# FSDD recordings (8 kHz wavs named <digit>_<speaker>_<take>.wav): the copy in the project's
# shared/ folder. The synthetic corpus (teacher pretraining audio) is generated into SYNTH_EN.
FSDD=${FSDD:-${MAIN_ROOT}/../shared/data/fsdd/recordings}
SYNTH_EN=${SYNTH_EN:-downloads/synth_en}
