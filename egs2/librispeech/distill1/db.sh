# Where the corpora are. LIBRISPEECH holds train-clean-100/, train-clean-360/, train-other-500/,
# dev-clean/, dev-other/, test-clean/, test-other/ (the folder the archives unpack to is
# LibriSpeech/). LIBRILIGHT holds Libri-light's librispeech_finetuning/ (1h/ and 9h/).
LIBRISPEECH=${LIBRISPEECH:-downloads/LibriSpeech}
LIBRILIGHT=${LIBRILIGHT:-downloads/librispeech_finetuning}
