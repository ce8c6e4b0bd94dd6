"""ESPnet inputs from Kaldi dirs: token lists (characters or sentencepiece BPE) and shape files.

The command line is ``python -m espnet_distill.bin.asr_prep`` (recipe stage 5). Transcripts are
normalised beforehand by the dump (:func:`espnet_distill.data.text.normalize_text`).
"""
from __future__ import annotations

import logging
from collections import Counter
from functools import lru_cache
from pathlib import Path

from espnet_distill.checkpoint_io import atomic_path
from espnet_distill.data.audio import SAMPLE_RATE
from espnet_distill.data.kaldi_dir import utt_durations
from espnet_distill.data.tables import read_table, write_table

logger = logging.getLogger(__name__)

SPECIALS_HEAD = ["<blank>", "<unk>"]
SPECIAL_TAIL = "<sos/eos>"


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


def write_token_list(texts: list[str], out: Path, token_type: str = "char", bpe_size: int = 100) -> list[str]:
    """Write ``out/tokens.txt`` (and ``out/bpe.model`` for ``bpe``) from ``texts``; returns the tokens."""
    out.mkdir(parents=True, exist_ok=True)
    tokens = make_char_list(texts) if token_type == "char" else make_bpe_list(texts, out, bpe_size)
    (out / "tokens.txt").write_text("\n".join(tokens) + "\n")
    return tokens


def write_shapes(data_dir: Path, out: Path, token_type: str = "char", bpe_model: str | None = None) -> None:
    """ESPnet's shape files for batching: ``out/speech_shape`` (samples at 16 kHz) and
    ``out/text_shape.<token_type>`` (tokens, at least 1)."""
    dur = utt_durations(data_dir)
    write_table(out / "speech_shape", [(u, str(int(round(x * SAMPLE_RATE)))) for u, x in dur.items()])
    read_table(data_dir / "text")  # checked whole (ids, UTF-8) before its shapes are written
    write_text_shape(data_dir / "text", out / f"text_shape.{token_type}", token_type, bpe_model)


def write_text_shape(text: Path, out: Path, token_type: str = "char", bpe_model: str | None = None,
                     token_list: Path | None = None) -> None:
    """ESPnet's text shape file of the Kaldi text file ``text``: ``<id> <tokens>`` (at least 1), read
    line by line (an LM text may be GBs). With ``token_list``, logs how many tokens it lacks (they
    become ``<unk>``)."""
    from tqdm import tqdm

    known = set(token_list.read_text(encoding="utf-8").split()) if token_list else None
    total = unknown = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f, open(text, encoding="utf-8") as lines:
        for line in tqdm(lines, desc=f"shapes of {text}", unit=" lines", mininterval=10, disable=None):
            key, _, value = line.rstrip("\n").partition(" ")
            if not key:
                continue
            tokens = tokenize(value.strip(), token_type, bpe_model)
            f.write(f"{key} {max(1, len(tokens))}\n")
            total += len(tokens)
            unknown += known is not None and sum(t not in known for t in tokens)
    if known is not None and unknown:
        logger.warning("%s: %d of its %d tokens (%.2f %%) are not in %s and become <unk>", text, unknown, total,
                       100 * unknown / max(1, total), token_list)
