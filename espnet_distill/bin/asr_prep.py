"""ESPnet inputs from Kaldi dirs (recipe stage 5): token lists and shape files.

    python -m espnet_distill.bin.asr_prep tokens --token-type char --text data/train/text --out dump/token_list/char
    python -m espnet_distill.bin.asr_prep shapes --data-dir data/train --token-type char --out dump/shapes/train

``tokens`` writes tokens.txt (``<blank> <unk>``, the tokens by frequency, ``<sos/eos>``) and, for
BPE, the sentencepiece model bpe.model. ``shapes`` writes speech_shape and text_shape.<type>.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_distill.asr.prep import write_shapes, write_token_list
from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.data.tables import read_table


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("asr_prep", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokens", help="write tokens.txt (and bpe.model for bpe)")
    t.add_argument("--token-type", choices=["char", "bpe"], default="char",
                   help="character or sentencepiece BPE tokens")
    t.add_argument("--bpe-size", type=int, default=100, help="BPE vocabulary size")
    t.add_argument("--text", nargs="+", required=True, help="Kaldi text files to build the list from")
    t.add_argument("--out", required=True, help="output folder (tokens.txt, bpe.model)")
    s = sub.add_parser("shapes", help="write speech_shape and text_shape for ESPnet's batching")
    s.add_argument("--data-dir", required=True, help="Kaldi data dir (with text)")
    s.add_argument("--token-type", choices=["char", "bpe"], default="char", help="token type")
    s.add_argument("--bpe-model", default=None, help="sentencepiece model for bpe")
    s.add_argument("--out", required=True, help="output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    a = build_parser().parse_args(argv)
    if a.cmd == "tokens":
        texts = [v for f in a.text for _, v in read_table(f).items]
        tokens = write_token_list(texts, Path(a.out), a.token_type, a.bpe_size)
        logging.info("%s: %d tokens", Path(a.out) / "tokens.txt", len(tokens))
    else:
        write_shapes(Path(a.data_dir), Path(a.out), a.token_type, a.bpe_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
