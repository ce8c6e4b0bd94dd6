"""ESPnet inputs from Kaldi dirs: token lists (characters or sentencepiece BPE) and shape files.

    python -m espnet_distill.asr.prep tokens --token-type char --text data/train/text --out dump/token_list/char
    python -m espnet_distill.asr.prep shapes --data-dir data/train --token-list .../tokens.txt --out dump/shapes/train

Text normalisation (applied to every transcript before tokenising and scoring) is
:func:`normalize_text`: case folding and punctuation removal, configurable per recipe.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

from espnet_distill.data.kaldi_dir import read_table, utt_durations, write_table
from espnet_distill.bin import setup_logging

SPECIALS_HEAD = ["<blank>", "<unk>"]
SPECIAL_TAIL = "<sos/eos>"


def normalize_text(text: str, case: str = "lower", punctuation: str = "remove") -> str:
    """The documented scoring/training normalisation: ``case`` lower|upper|keep; ``punctuation``
    remove (every Unicode punctuation character except apostrophes inside words) | keep;
    whitespace collapsed."""
    if case == "lower":
        text = text.lower()
    elif case == "upper":
        text = text.upper()
    if punctuation == "remove":
        text = "".join(" " if unicodedata.category(c).startswith("P") and c != "'" else c for c in text)
        text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def add_text_norm_args(parser, what: str = "text") -> None:
    """``--case`` and ``--punctuation``: the options of :func:`normalize_text` on a CLI."""
    parser.add_argument("--case", choices=["lower", "upper", "keep"], default="lower", help=f"case folding of {what}")
    parser.add_argument("--punctuation", choices=["remove", "keep"], default="remove", help=f"punctuation in {what}")


def char_tokens(text: str) -> list[str]:
    return ["<space>" if c == " " else c for c in text]


def make_char_list(texts: list[str]) -> list[str]:
    counts = Counter(t for line in texts for t in char_tokens(line))
    return SPECIALS_HEAD + [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))] + [SPECIAL_TAIL]


def make_bpe_list(texts: list[str], out_dir: Path, vocab_size: int) -> list[str]:
    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.txt").write_text("\n".join(texts) + "\n")
    spm.SentencePieceTrainer.train(input=str(out_dir / "train.txt"), model_prefix=str(out_dir / "bpe"),
                                   vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
                                   unk_surface="<unk>", input_sentence_size=100000000, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(out_dir / "bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    return SPECIALS_HEAD + [p for p in pieces if p not in ("<unk>", "<s>", "</s>")] + [SPECIAL_TAIL]


@lru_cache(maxsize=4)
def bpe_processor(bpe_model: str):
    """The sentencepiece model, loaded once per process."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=bpe_model)


def tokenize(text: str, token_type: str, bpe_model: str | None = None) -> list[str]:
    if token_type == "char":
        return char_tokens(text)
    return bpe_processor(bpe_model).encode(text, out_type=str)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="asr.prep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokens", help="write tokens.txt (and bpe.model for bpe)")
    t.add_argument("--token-type", choices=["char", "bpe"], default="char", help="character or sentencepiece BPE tokens")
    t.add_argument("--bpe-size", type=int, default=100, help="BPE vocabulary size")
    t.add_argument("--text", nargs="+", required=True, help="Kaldi text files to build the list from")
    t.add_argument("--out", required=True, help="output folder (tokens.txt, bpe.model)")
    s = sub.add_parser("shapes", help="write speech_shape and text_shape for ESPnet's batching")
    s.add_argument("--data-dir", required=True, help="Kaldi data dir (with text)")
    s.add_argument("--token-type", choices=["char", "bpe"], default="char", help="token type")
    s.add_argument("--bpe-model", default=None, help="sentencepiece model for bpe")
    s.add_argument("--out", required=True, help="output folder")
    a = p.parse_args(argv)
    if a.cmd == "tokens":
        texts = [v for f in a.text for _, v in read_table(f).items]
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        tokens = make_char_list(texts) if a.token_type == "char" else make_bpe_list(texts, out, a.bpe_size)
        (out / "tokens.txt").write_text("\n".join(tokens) + "\n")
        logging.info("%s: %d tokens", out / "tokens.txt", len(tokens))
    else:
        d, out = Path(a.data_dir), Path(a.out)
        dur = utt_durations(d)
        write_table(out / "speech_shape", [(u, str(int(round(x * 16000)))) for u, x in dur.items()])
        text = read_table(d / "text").items
        write_table(out / f"text_shape.{a.token_type}",
                    [(u, str(max(1, len(tokenize(v, a.token_type, a.bpe_model))))) for u, v in text])
    return 0


if __name__ == "__main__":
    sys.exit(main())
