# FSDD recordings (8 kHz wavs named <digit>_<speaker>_<take>.wav): set FSDD to a copy you have.
# Where that folder is absent, local/data.sh clones FSDD_URL into downloads/ (its recordings/ is
# this default). The synthetic corpus (teacher pretraining audio) is generated into SYNTH_EN.
FSDD=${FSDD:-downloads/free-spoken-digit-dataset/recordings}
FSDD_URL=${FSDD_URL:-https://github.com/Jakobovski/free-spoken-digit-dataset.git}
SYNTH_EN=${SYNTH_EN:-downloads/synth_en}
