"""Any Kaldi data dir -> the plain form ESPnet's readers take (``dump/raw/<set>``).

ESPnet's ``sound`` reader opens files only: no pipes, no ``segments``, no resampling. Before the
ESPnet stages, every set is therefore rewritten once:

- audio: whatever ``wav.scp`` (+ ``segments``) holds, read by our reader (wav, flac, any rate,
  stereo, Kaldi arks, ``cmd |`` pipes), written as one 16 kHz mono 16-bit file per utterance
  (another ``rate`` writes band-limited copies for data preparation, which our reader brings back
  to 16 kHz; ESPnet's reader does not resample, so its inputs keep 16 kHz);
- text: normalised with :func:`espnet_distill.data.text.normalize_text` (the documented rule:
  case folding, punctuation except word-internal apostrophes removed, whitespace collapsed);
- filtering (training sets only): utterances longer than ``max_seconds`` or shorter than
  ``min_seconds``, and those whose text is empty after normalisation, are dropped; the counts
  are logged and every dropped utterance is listed with its reason in ``dropped``.

Two steps, so that the audio can be written by parallel jobs::

    write_shard(src, out, shard=J, num_shards=N)   # audio/<J>/*.flac, parts/utt2num_samples.<J>, parts/rate.<J>
    finish(src, out, num_shards=N, ...)            # wav.scp text utt2spk spk2utt utt2dur dropped

A killed job resumes: audio files are written under a temporary name and renamed, and files
already there are kept.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from espnet_distill.checkpoint_io import atomic_path
from espnet_distill.data.audio import SAMPLE_RATE, to_mono
from espnet_distill.data.kaldi_dir import utt2spk_to_spk2utt
from espnet_distill.data.tables import read_table, shard_utts, write_table
from espnet_distill.data.text import normalize_text
from espnet_distill.data.utterances import iter_data_dir_audio

logger = logging.getLogger(__name__)

FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}


class DumpError(ValueError):
    """A data dir cannot be dumped (names the file or utterance)."""


def audio_name(utt: str, audio_format: str) -> str:
    """A file name for an utterance id (``/`` would make a folder; it becomes ``%2F``)."""
    return utt.replace("%", "%25").replace("/", "%2F") + "." + audio_format


def write_shard(src: str | os.PathLike, out: str | os.PathLike, shard: int = 1, num_shards: int = 1,
                audio_format: str = "flac", progress: bool = True, rate: int = SAMPLE_RATE) -> int:
    """Write the audio of one shard of ``src`` under ``out/audio/<shard>/`` at ``rate`` Hz, its
    sample counts to ``out/parts/utt2num_samples.<shard>`` and the rate to ``out/parts/rate.<shard>``.
    Returns the number of utterances."""
    if audio_format not in FORMATS:
        raise DumpError(f"audio format must be one of {sorted(FORMATS)}, got {audio_format!r}")
    if not 1000 <= rate <= SAMPLE_RATE:
        raise DumpError(f"rate must be in 1000..{SAMPLE_RATE} Hz (the reader gives {SAMPLE_RATE} Hz), got {rate}")
    src, out = Path(src), Path(out)
    utts = shard_utts(read_table(src / "utt2spk").keys(), shard, num_shards)
    folder = out / "audio" / str(shard)
    folder.mkdir(parents=True, exist_ok=True)
    fmt, subtype = FORMATS[audio_format]
    lines: list[tuple[str, str]] = []
    todo = []
    for utt in utts:
        path = folder / audio_name(utt, audio_format)
        if path.is_file():  # written by an earlier, killed run (files appear only when complete)
            info = sf.info(str(path))
            if info.samplerate != rate:
                raise DumpError(f"{path}: written at {info.samplerate} Hz by an earlier run, this one asks for "
                                f"{rate} Hz; remove {out} and dump again")
            lines.append((utt, str(info.frames)))
        else:
            todo.append(utt)
    if len(todo) < len(utts):
        logger.info("%s shard %d: %d of %d utterances already written", out, shard, len(utts) - len(todo), len(utts))
    if todo:
        for utt, x in iter_data_dir_audio(src, progress=progress, utts=todo):
            path = folder / audio_name(utt, audio_format)
            x = to_mono(x, SAMPLE_RATE, target=rate)
            peak = float(np.abs(x).max()) if len(x) else 0.0
            if peak > 1.0:
                logger.warning("utterance '%s': peak %.2f > 1.0, clipped when written as 16-bit", utt, peak)
            with atomic_path(path) as tmp:
                sf.write(str(tmp), np.clip(x, -1.0, 1.0), rate, subtype=subtype, format=fmt)
            lines.append((utt, str(len(x))))
    (out / "parts").mkdir(parents=True, exist_ok=True)
    write_table(out / "parts" / f"utt2num_samples.{shard}", lines)
    (out / "parts" / f"rate.{shard}").write_text(f"{rate}\n")
    return len(lines)


@dataclass
class DumpStats:
    total: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"too_long": 0, "too_short": 0, "empty_text": 0})

    def summary(self, min_seconds: float, max_seconds: float | None) -> str:
        longer = f"longer than {max_seconds:g} s" if max_seconds else "too long"
        return (f"kept {self.kept} of {self.total} utterances (dropped {self.dropped['too_long']} {longer}, "
                f"{self.dropped['too_short']} shorter than {min_seconds:g} s, "
                f"{self.dropped['empty_text']} with empty text after normalisation)")


def drop_reason(seconds: float, text: str | None, min_seconds: float, max_seconds: float | None) -> str | None:
    """Why a training utterance is dropped (``too_long``, ``too_short``, ``empty_text``), or None."""
    if max_seconds is not None and seconds > max_seconds:
        return "too_long"
    if seconds < min_seconds:
        return "too_short"
    if text is not None and not text.strip():
        return "empty_text"
    return None


def finish(src: str | os.PathLike, out: str | os.PathLike, num_shards: int = 1, audio_format: str = "flac",
           filter_utts: bool = True, min_seconds: float = 0.1, max_seconds: float | None = 20.0,
           case: str = "lower", punctuation: str = "remove") -> DumpStats:
    """Write the dumped data dir ``out`` from the shards' parts (durations at the rate the audio
    jobs wrote); filter when ``filter_utts``."""

    src, out = Path(src), Path(out)
    samples: dict[str, int] = {}
    shard_of: dict[str, int] = {}
    rates: set[int] = set()
    for shard in range(1, num_shards + 1):
        part, rate_file = out / "parts" / f"utt2num_samples.{shard}", out / "parts" / f"rate.{shard}"
        for f in (part, rate_file):
            if not f.is_file():
                raise DumpError(f"{f} is missing: the audio job of shard {shard} did not finish")
        rates.add(int(rate_file.read_text()))
        for u, n in read_table(part).items:
            samples[u], shard_of[u] = int(n), shard
    if len(rates) > 1:
        raise DumpError(f"{out}: the audio jobs wrote different rates {sorted(rates)}; rerun them with one --rate")
    rate = rates.pop()
    utt2spk = read_table(src / "utt2spk").items
    missing = [u for u, _ in utt2spk if u not in samples]
    if missing:
        raise DumpError(f"{src}: utterance '{missing[0]}' (and {len(missing) - 1} more) has no dumped audio; "
                        f"rerun the audio jobs with --num-shards {num_shards}")
    text = None
    if (src / "text").is_file():
        table = read_table(src / "text", allow_empty_value=True)
        text = {u: normalize_text(t, case, punctuation) for u, t in table.items}
    stats, kept, dropped = DumpStats(total=len(utt2spk)), [], []
    for utt, spk in utt2spk:
        reason = drop_reason(samples[utt] / rate, text.get(utt) if text else None, min_seconds, max_seconds) \
            if filter_utts else None
        if reason:
            stats.dropped[reason] += 1
            dropped.append((utt, f"{reason} {samples[utt] / rate:.3f}"))
        else:
            kept.append((utt, spk))
    stats.kept = len(kept)
    if not kept:
        raise DumpError(f"{src}: no utterance left: {stats.summary(min_seconds, max_seconds)}")
    root = out.resolve()
    write_table(out / "wav.scp", [(u, str(root / "audio" / str(shard_of[u]) / audio_name(u, audio_format)))
                                  for u, _ in kept])
    write_table(out / "utt2spk", kept)
    write_table(out / "spk2utt", utt2spk_to_spk2utt(kept))
    write_table(out / "utt2dur", [(u, f"{samples[u] / rate:.4f}") for u, _ in kept])
    if text is not None:
        write_table(out / "text", [(u, text[u]) for u, _ in kept])
    write_table(out / "dropped", dropped)
    logger.info("%s: %s", out, stats.summary(min_seconds, max_seconds) if filter_utts
                else f"kept all {stats.kept} utterances (no filtering)")
    return stats
