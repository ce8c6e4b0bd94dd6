"""LibriSpeech and Libri-light fine-tuning sets -> Kaldi data dirs.

LibriSpeech: ``<root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac`` with one
``<speaker>-<chapter>.trans.txt`` per chapter (``<utt> <TRANSCRIPT>`` lines).
Libri-light limited-resource sets: ``<finetuning>/1h/<0..5>/{clean,other}/...`` and
``<finetuning>/9h/{clean,other}/...`` with the same chapter layout; 10 min = ``1h/0``,
1 h = ``1h/*``, 10 h = ``1h/*`` + ``9h``.

Every problem of the tree (a chapter without transcript file, a chapter without audio, a
transcript line without its flac) raises :class:`LibriSpeechError` naming the path.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from espnet_distill.data.kaldi_dir import utt2spk_to_spk2utt
from espnet_distill.data.tables import write_table

logger = logging.getLogger(__name__)

LIBRILIGHT_SUBSETS = {"10min": ["1h/0"], "1h": [f"1h/{i}" for i in range(6)],
                      "10h": [f"1h/{i}" for i in range(6)] + ["9h"]}


class LibriSpeechError(ValueError):
    pass


def chapters(split_dir: Path) -> list[Path]:
    """Every ``<speaker>/<chapter>`` folder below ``split_dir`` (any depth, e.g. Libri-light's clean/other)."""
    out = []
    chapters = {p.parent for p in split_dir.rglob("*.flac")} | {p.parent for p in split_dir.rglob("*.trans.txt")}
    for trans_dir in sorted(chapters):
        out.append(trans_dir)
    return out


def read_chapter(chapter: Path) -> list[tuple[str, str, str, Path]]:
    """[(utt, speaker, transcript, flac)] of one chapter folder."""
    spk, chap = chapter.parent.name, chapter.name
    trans = chapter / f"{spk}-{chap}.trans.txt"
    flacs = sorted(chapter.glob("*.flac"))
    if not trans.is_file():
        raise LibriSpeechError(f"{chapter}: missing transcript file {trans.name}")
    if not flacs:
        raise LibriSpeechError(f"{chapter}: chapter has a transcript but no audio (.flac) files")
    rows = []
    for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) < 2:
            raise LibriSpeechError(f"{trans}:{lineno}: utterance '{parts[0]}' has no transcript")
        utt, text = parts
        flac = chapter / f"{utt}.flac"
        if not flac.is_file():
            raise LibriSpeechError(f"{trans}:{lineno}: no audio file {flac.name} for utterance '{utt}'")
        rows.append((utt, spk, text.strip(), flac))
    return rows


def prepare_dirs(sources: list[Path], dst: str | os.PathLike) -> int:
    """Write a Kaldi dir (wav.scp with flac paths, text, utt2spk, spk2utt) for all chapters of ``sources``."""
    rows = []
    for src in sources:
        if not src.is_dir():
            raise LibriSpeechError(f"{src}: not found")
        found = chapters(src)
        if not found:
            raise LibriSpeechError(f"{src}: no chapters (<speaker>/<chapter>/*.flac + *.trans.txt) below it")
        for ch in found:
            rows += read_chapter(ch)
    d = Path(dst)
    write_table(d / "wav.scp", [(u, str(f.resolve())) for u, _, _, f in rows])
    write_table(d / "text", [(u, t) for u, _, t, _ in rows])
    u2s = [(u, s) for u, s, _, _ in rows]
    write_table(d / "utt2spk", u2s)
    write_table(d / "spk2utt", utt2spk_to_spk2utt(u2s))
    logger.info("%s: %d utterances, %d speakers", d, len(rows), len({s for _, s, _, _ in rows}))
    return len(rows)


def librilight_sources(finetuning_root: str | os.PathLike, subset: str) -> list[Path]:
    if subset not in LIBRILIGHT_SUBSETS:
        raise LibriSpeechError(f"unknown Libri-light subset '{subset}'; choose one of {sorted(LIBRILIGHT_SUBSETS)}")
    return [Path(finetuning_root) / p for p in LIBRILIGHT_SUBSETS[subset]]
