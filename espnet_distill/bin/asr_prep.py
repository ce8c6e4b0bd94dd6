"""ESPnet inputs from Kaldi dirs (recipe stages 5 and 6): token lists, shape files, the LM's text.

    python -m espnet_distill.bin.asr_prep tokens --token-type char --text data/train/text --out dump/token_list/char
    python -m espnet_distill.bin.asr_prep shapes --data-dir data/train --token-type char --out dump/shapes/train
    python -m espnet_distill.bin.asr_prep lm-text --text lm.txt.gz --out exp/lm/data/train.text --case lower
    python -m espnet_distill.bin.asr_prep text-shape --text exp/lm/data/train.text --out exp/lm/data/train.shape
    python -m espnet_distill.bin.asr_prep check-ngram --ngram-file tokens.arpa --token-list tokens.txt

``tokens`` writes tokens.txt (``<blank> <unk>``, the tokens by frequency, ``<sos/eos>``) and, for
BPE, the sentencepiece model bpe.model. ``shapes`` writes speech_shape and text_shape.<type>.
``lm-text`` writes the normalised Kaldi text an LM trains on (espnet_distill/asr/lm.py);
``text-shape`` its shape file; ``check-ngram`` refuses an ARPA file that is not over the tokens.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_distill.asr.lm import check_ngram_tokens, write_lm_text
from espnet_distill.asr.prep import write_shapes, write_text_shape, write_token_list
from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.data.tables import read_table
from espnet_distill.data.text import CASES, PUNCTUATION


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
    m = sub.add_parser("lm-text", help="write the normalised Kaldi text an LM trains on")
    m.add_argument("--text", nargs="+", required=True,
                   help="text files, one sentence per line (.gz read too), or data dirs (their Kaldi text)")
    m.add_argument("--case", choices=CASES, default="lower", help="case folding (recipes: --text_norm_opts)")
    m.add_argument("--punctuation", choices=PUNCTUATION, default="remove", help="punctuation rule")
    m.add_argument("--out", required=True, help="output Kaldi text file")
    e = sub.add_parser("text-shape", help="write the text shape file of a Kaldi text (read line by line)")
    e.add_argument("--text", required=True, help="Kaldi text file")
    e.add_argument("--token-type", choices=["char", "bpe"], default="char", help="token type")
    e.add_argument("--bpe-model", default=None, help="sentencepiece model for bpe")
    e.add_argument("--token-list", default=None, help="tokens.txt: log how many tokens it lacks")
    e.add_argument("--out", required=True, help="output shape file")
    g = sub.add_parser("check-ngram", help="refuse an ARPA file whose unigrams are not the ASR tokens")
    g.add_argument("--ngram-file", required=True, help="ARPA file (or KenLM binary: not checked)")
    g.add_argument("--token-list", required=True, help="the ASR models' tokens.txt")
    return p


def tokens(a: argparse.Namespace) -> None:
    texts = [v for f in a.text for _, v in read_table(f).items]
    written = write_token_list(texts, Path(a.out), a.token_type, a.bpe_size)
    logging.info("%s: %d tokens", Path(a.out) / "tokens.txt", len(written))


COMMANDS = {
    "tokens": tokens,
    "shapes": lambda a: write_shapes(Path(a.data_dir), Path(a.out), a.token_type, a.bpe_model),
    "lm-text": lambda a: write_lm_text(a.text, a.out, a.case, a.punctuation),
    "text-shape": lambda a: write_text_shape(Path(a.text), Path(a.out), a.token_type, a.bpe_model,
                                             Path(a.token_list) if a.token_list else None),
    "check-ngram": lambda a: check_ngram_tokens(a.ngram_file, a.token_list),
}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    a = build_parser().parse_args(argv)
    try:
        COMMANDS[a.cmd](a)
    except (ValueError, OSError) as e:  # DataDirError is a ValueError: it names the file and line
        logging.error("asr_prep %s: %s", a.cmd, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
