"""The language model of LM decoding (recipe stage 6 with ``--use_lm true``): its training text and
the check of a user's n-gram file.

ESPnet trains the LM (``espnet2.bin.lm_train``) on Kaldi text files with the ASR models' token
list, so that shallow fusion scores the tokens the ASR model emits. :func:`write_lm_text` turns
corpus text (one sentence per line, plain or gzip, as LibriSpeech's ``librispeech-lm-norm.txt``;
or a data dir's Kaldi ``text``) into one such file, normalised by the one text rule
(:func:`espnet_distill.data.text.normalize_text`).

ESPnet's n-gram scorer (``espnet2/legacy/nets/scorers/ngram.py``) asks KenLM for each token of the
ASR token list by its string: the n-gram must be over those tokens (as ``asr.sh`` builds it with
``lmplz`` on the tokenised LM text), and a word ARPA beside a character model scores nothing but
unknowns. :func:`check_ngram_tokens` refuses such a file.
"""
from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path
from typing import IO, Iterator

from espnet_distill.checkpoint_io import atomic_path
from espnet_distill.data.tables import DataDirError
from espnet_distill.data.text import normalize_text

logger = logging.getLogger(__name__)

SPECIALS = ("<blank>", "<unk>", "<sos/eos>")  # tokens an n-gram over the text never holds


def open_bytes(path: str | os.PathLike) -> IO[bytes]:
    """A text file for reading as bytes; ``.gz`` files through gzip."""
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def text_lines(path: str | os.PathLike, kaldi: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, sentence) of each non-empty line of ``path``; ``kaldi``: the first word of each
    line is an utterance id and is dropped. Bytes that are not UTF-8 raise :class:`DataDirError`
    naming the file and line."""
    with open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise DataDirError(f"{path}:{lineno}: not valid UTF-8 (byte {raw[e.start:e.start + 1]!r} at column "
                                   f"{e.start + 1})") from None
            if kaldi:
                line = line.split(maxsplit=1)[1] if " " in line else ""
            if line:
                yield lineno, line


def lm_text_source(source: str | os.PathLike) -> tuple[Path, bool]:
    """(file, whether it is Kaldi text) of an LM text source: a data dir stands for its ``text``
    file, whose lines start with utterance ids; any other file holds one sentence per line."""
    source = Path(source)
    return (source / "text", True) if source.is_dir() else (source, False)


def write_lm_text(sources: list[str | os.PathLike], out: str | os.PathLike, case: str = "lower",
                  punctuation: str = "remove") -> int:
    """Write ``out``, a Kaldi text file ``lm000000001 sentence`` (ids in sorted order), from the lines
    of ``sources`` (:func:`lm_text_source`) normalised by ``case`` and ``punctuation``; lines empty
    after it are left out. Written whole or not at all. Returns the number of sentences."""
    from tqdm import tqdm

    n = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for src, kaldi in map(lm_text_source, sources):
            for _, line in tqdm(text_lines(src, kaldi), desc=f"LM text {src}", unit=" lines",
                                mininterval=10, disable=None):
                sentence = normalize_text(line, case, punctuation)
                if sentence:
                    n += 1
                    f.write(f"lm{n:09d} {sentence}\n")
        if n == 0:  # nothing written
            raise DataDirError(f"{', '.join(map(str, sources))}: no sentence left for the LM after normalisation")
    logger.info("%s: %d sentences from %s", out, n, ", ".join(map(str, sources)))
    return n


def arpa_unigrams(path: str | os.PathLike) -> set[str] | None:
    """The words of the ``\\1-grams:`` section of an ARPA file (plain or gzip); None for a KenLM
    binary file, whose vocabulary is not read here."""
    with open_bytes(path) as f:
        if f.read(8) == b"mmap lm ":  # KenLM's binary format
            return None
    words, inside = set(), False
    for _, line in text_lines(path):
        if line.startswith("\\"):
            if inside:
                break
            inside = line == "\\1-grams:"
            continue
        if inside:
            fields = line.split("\t")
            if len(fields) >= 2:
                words.add(fields[1])
    return words


def check_ngram_tokens(ngram_file: str | os.PathLike, token_list: str | os.PathLike) -> None:
    """Refuse (ValueError) an ARPA ``ngram_file`` that holds fewer than half the tokens of
    ``token_list`` among its unigrams: ESPnet's scorer would look up tokens it does not have."""
    unigrams = arpa_unigrams(ngram_file)
    if unigrams is None:
        logger.info("%s: a KenLM binary file; its vocabulary is not checked against %s", ngram_file, token_list)
        return
    tokens = [t for t in Path(token_list).read_text(encoding="utf-8").split() if t not in SPECIALS]
    have = [t for t in tokens if t in unigrams]
    if 2 * len(have) < len(tokens):
        raise ValueError(
            f"{ngram_file}: only {len(have)} of the {len(tokens)} ASR tokens of {token_list} are among its "
            f"{len(unigrams)} unigrams: ESPnet's n-gram scorer looks up each token by its string, so the n-gram "
            f"must be over the ASR tokens (KenLM's lmplz on the tokenised LM text), not over words")
    logger.info("%s: %d of the %d ASR tokens are among its unigrams", ngram_file, len(have), len(tokens))
