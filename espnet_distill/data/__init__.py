"""Generic data tools (floor 1), bottom up: tables.py (Kaldi tables), audio.py (one wav.scp entry
-> 16 kHz), utterances.py (a dir's utterances: wav.scp + segments), kaldi_dir.py (validate, fix,
subset, combine, split, durations), kaldi_compat.py (Kaldi's command-line signatures), text.py
(the one text normalisation), dataset.py (streaming, bucketed batches), dump.py (16 kHz files
for ESPnet). Corpus builders live in :mod:`espnet_distill.corpora`."""
