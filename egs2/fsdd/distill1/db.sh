# FSDD recordings (8 kHz wavs named <digit>_<speaker>_<take>.wav): the copy in the project's
# shared/ folder. Where that folder is absent, local/data.sh clones FSDD_URL into downloads/.
# The synthetic corpus (teacher pretraining audio) is generated into SYNTH_EN.
FSDD=${FSDD:-${MAIN_ROOT}/../shared/data/fsdd/recordings}
FSDD_URL=${FSDD_URL:-https://github.com/Jakobovski/free-spoken-digit-dataset.git}
SYNTH_EN=${SYNTH_EN:-downloads/synth_en}
