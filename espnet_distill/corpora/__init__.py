"""Corpus builders: each writes Kaldi data dirs for one corpus (synthetic English, LibriSpeech,
FSDD) with the generic tools of :mod:`espnet_distill.data`."""
