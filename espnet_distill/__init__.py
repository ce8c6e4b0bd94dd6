"""espnet_distill: distil HuBERT teachers into small students and fine-tune them with ESPnet.

The package is built in floors; every import points to its own floor or a lower one
(test/espnet_distill/test_layers.py checks it):

0. ``config``, ``checkpoint_io``, ``losses``, ``jobs``: typed configs, weights-only I/O, pure losses.
1. ``nn`` (HuBERT's architecture), ``data`` (Kaldi dirs, audio, text, datasets, dumps).
2. ``corpora`` (corpus builders), ``teacher`` (one API over every backend), ``student``.
3. ``train``: the trainer and its tasks (distillation, HuBERT pretraining).
4. ``asr`` (ESPnet glue), ``analysis`` (benchmarks, CKA, result tables).
5. ``bin``: the entry points, argument parsers over the floors below.
"""
