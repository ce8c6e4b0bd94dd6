# Where the corpora are. LIBRISPEECH holds train-clean-100/, train-clean-360/, train-other-500/,
# dev-clean/, dev-other/, test-clean/, test-other/ (the archives unpack to LibriSpeech/<split>/).
# LIBRILIGHT holds Libri-light's librispeech_finetuning/ content (1h/ and 9h/). What is missing
# is downloaded from the two URLs by local/data.sh (--download false: never). LIBRISPEECH_LM is
# LibriSpeech's LM text (librispeech-lm-norm.txt.gz, openslr.org resource 11), kept gzipped.
LIBRISPEECH=${LIBRISPEECH:-downloads/LibriSpeech}
LIBRILIGHT=${LIBRILIGHT:-downloads/librispeech_finetuning}
LIBRISPEECH_URL=${LIBRISPEECH_URL:-https://www.openslr.org/resources/12}
LIBRILIGHT_URL=${LIBRILIGHT_URL:-https://dl.fbaipublicfiles.com/librilight/data/librispeech_finetuning.tgz}
LIBRISPEECH_LM=${LIBRISPEECH_LM:-downloads/librispeech-lm-norm.txt.gz}
LIBRISPEECH_LM_URL=${LIBRISPEECH_LM_URL:-https://www.openslr.org/resources/11/librispeech-lm-norm.txt.gz}
