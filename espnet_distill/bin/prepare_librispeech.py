"""Kaldi dirs from LibriSpeech splits and Libri-light fine-tuning subsets.

    python -m espnet_distill.bin.prepare_librispeech split --root /data/LibriSpeech --split dev-clean \\
        --out data/dev_clean
    python -m espnet_distill.bin.prepare_librispeech librilight --root /data/librispeech_finetuning --subset 1h \\
        --out data/train_1h

A missing transcript file, a chapter without audio or a transcript line without its flac
stops with a message naming the path.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.corpora.librispeech import LIBRILIGHT_SUBSETS, LibriSpeechError, librilight_sources, prepare_dirs


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("prepare_librispeech", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="one LibriSpeech split (train-clean-100, dev-other, ...)")
    s.add_argument("--root", required=True, help="the LibriSpeech folder (holding train-clean-100/, dev-clean/, ...)")
    s.add_argument("--split", required=True, nargs="+", help="split name(s); several are combined into one dir")
    s.add_argument("--out", required=True, help="Kaldi data dir to write")
    ll = sub.add_parser("librilight", help="a Libri-light limited-resource subset")
    ll.add_argument("--root", required=True, help="the librispeech_finetuning folder (holding 1h/ and 9h/)")
    ll.add_argument("--subset", required=True, choices=sorted(LIBRILIGHT_SUBSETS), help="10min, 1h or 10h")
    ll.add_argument("--out", required=True, help="Kaldi data dir to write")
    a = p.parse_args(argv)
    try:
        if a.cmd == "split":
            prepare_dirs([Path(a.root) / x for x in a.split], a.out)
        else:
            prepare_dirs(librilight_sources(a.root, a.subset), a.out)
    except LibriSpeechError as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
