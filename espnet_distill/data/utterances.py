"""The audio of a data dir's utterances: the one place where ``wav.scp`` and ``segments`` meet.

:class:`DataDirAudio` reads an utterance (``load``) or a run of them (``iter``: each recording
is read once per run of its segments). Every error is an :class:`AudioError` naming the
utterance, the entry, and the lines of ``wav.scp`` (and ``segments``) it came from.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from espnet_distill.data.audio import AudioError, read_entry, segment_audio
from espnet_distill.data.tables import Segment, read_segments, read_table, table_lines


class DataDirAudio:
    """Utterance id -> (L,) float32 16 kHz waveform, for the utterances of one data dir."""

    def __init__(self, data_dir: str | os.PathLike):
        d = Path(data_dir)
        self.data_dir = d
        wav = read_table(d / "wav.scp")
        self.wav = wav.as_dict()
        self._wav_where = table_lines(wav)
        self.segments: dict[str, Segment] | None = None
        if (d / "segments").is_file():
            seg = read_table(d / "segments")
            self.segments = read_segments(seg)
            self._seg_where = table_lines(seg)

    def utts(self) -> list[str]:
        """The dir's utterances in utt2spk order."""
        return read_table(self.data_dir / "utt2spk").keys()

    def _source(self, utt: str) -> tuple[str, tuple[float, float] | None, str]:
        """``(recording key, segment or None, "[file:line, ...]")`` of an utterance."""
        if self.segments is None:
            return utt, None, f"[{self._wav_where[utt]}]"
        seg = self.segments[utt]
        return seg.reco, (seg.start, seg.end), f"[{self._wav_where[seg.reco]}, {self._seg_where[utt]}]"

    def _read(self, utt: str, last: tuple | None = None) -> tuple[np.ndarray, tuple]:
        """``(waveform, recording)`` of ``utt``; ``last``, the recording of the previous call
        ``(key, samples, rate)``, is reused when ``utt`` lies in it (segments of one recording)."""
        key, segment, where = self._source(utt)
        try:
            if last is None or last[0] != key:
                last = (key, *read_entry(utt, self.wav[key]))
            return segment_audio(utt, last[1], last[2], segment, self.wav[key]), last
        except AudioError as e:
            raise AudioError(f"{e} {where}") from None

    def load(self, utt: str) -> np.ndarray:
        """(L,) float32 16 kHz audio of ``utt``."""
        return self._read(utt)[0]

    def iter(self, utts: list[str] | None = None, progress: bool = False) -> Iterator[tuple[str, np.ndarray]]:
        """``(utt, waveform)`` for ``utts`` (default: every utterance, utt2spk order); a recording
        is read once for consecutive utterances of it."""
        from tqdm import tqdm

        last = None
        for utt in tqdm(self.utts() if utts is None else utts, desc=f"reading {self.data_dir.name}",
                        disable=not progress, unit="utt"):
            x, last = self._read(utt, last)
            yield utt, x


def iter_data_dir_audio(data_dir: str | os.PathLike, progress: bool = False,
                        utts: list[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(utt, waveform)`` for every utterance of a data dir (or those of ``utts``)."""
    return DataDirAudio(data_dir).iter(utts, progress)
