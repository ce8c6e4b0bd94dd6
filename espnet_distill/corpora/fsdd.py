"""The Free Spoken Digit Dataset (real speech, 8 kHz) -> speaker-independent Kaldi dirs.

Files are ``{digit}_{speaker}_{take}.wav``; the transcript is the digit's English word.
``wav.scp`` points at the 8 kHz originals: our reader resamples them to 16 kHz when they are
read, and the ESPnet stages read the 16 kHz copies that the recipe's dump step writes.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import soundfile as sf

from espnet_distill.data.kaldi_dir import utt2spk_to_spk2utt
from espnet_distill.data.tables import write_table

logger = logging.getLogger(__name__)

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


class FSDDError(ValueError):
    pass


def scan(recordings: str | os.PathLike) -> dict[str, list[tuple[str, str, Path]]]:
    """{speaker: [(utt, transcript, path)]}; utt = ``<speaker>-<digit>_<take>``."""
    root = Path(recordings)
    if not root.is_dir():
        raise FSDDError(f"{root}: FSDD recordings folder not found (set FSDD in db.sh)")
    out: dict[str, list] = {}
    for p in sorted(root.glob("*.wav")):
        m = NAME.match(p.name)
        if not m:
            raise FSDDError(f"{p}: file name is not <digit>_<speaker>_<take>.wav")
        digit, spk, take = m.groups()
        out.setdefault(spk, []).append((f"{spk}-{digit}_{int(take):02d}", WORDS[int(digit)], p))
    if not out:
        raise FSDDError(f"{root}: no .wav files")
    return out


def prepare(recordings: str | os.PathLike, data_root: str | os.PathLike, split: dict[str, list[str]]) -> dict[str, int]:
    """Write ``data_root/<set>`` for each ``set: [speakers]`` of ``split``."""
    by_spk = scan(recordings)
    wanted = {s for spks in split.values() for s in spks}
    unknown = wanted - set(by_spk)
    if unknown:
        raise FSDDError(f"speakers {sorted(unknown)} are not in the recordings (found {sorted(by_spk)})")
    counts = {}
    for name, spks in split.items():
        wav, text, u2s, dur = [], [], [], []
        for spk in spks:
            for utt, word, path in by_spk[spk]:
                try:
                    seconds = sf.info(str(path)).duration
                except sf.LibsndfileError as e:
                    raise FSDDError(f"{path}: not readable audio ({e})") from None
                wav.append((utt, str(path.resolve())))
                dur.append((utt, f"{seconds:.4f}"))
                text.append((utt, word))
                u2s.append((utt, spk))
        d = Path(data_root) / name
        write_table(d / "wav.scp", wav)
        write_table(d / "text", text)
        write_table(d / "utt2spk", u2s)
        write_table(d / "utt2dur", dur)
        write_table(d / "spk2utt", utt2spk_to_spk2utt(u2s))
        counts[name] = len(wav)
        logger.info("%s: %d utterances of %s", d, len(wav), spks)
    return counts
