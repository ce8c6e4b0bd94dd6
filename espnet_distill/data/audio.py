"""Read wav.scp entries into 16 kHz mono float32 waveforms (one entry at a time; a data dir's
utterances, with their segments, are read by :mod:`espnet_distill.data.utterances`).

An entry is one of
- a file path (wav, flac, anything libsndfile reads; any rate; mono or stereo),
- a Kaldi ark offset (``foo.ark:1234``, read with kaldiio),
- a pipe ending in ``|`` (``sox in.flac -t wav - |``), run with bash and pipefail.
A ``segments`` line cuts ``[start, end)`` seconds out of a recording.

Every error is an :class:`AudioError` naming the utterance id and the entry.
"""
from __future__ import annotations

import io
import logging
import os
import subprocess
from functools import lru_cache

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# HuBERT's CNN geometry at 16 kHz, the one frame grid of the toolkit: every front-end, teacher and
# frame-level target counts frames with cnn_frames
FRAME_WINDOW = 400  # samples one frame sees (25 ms): the shortest input that gives a frame
FRAME_HOP = 320  # samples per frame (20 ms): frame-level targets move in these steps


def cnn_frames(lengths):
    """Frames of ``lengths`` samples (an int or a tensor): floor((L - FRAME_WINDOW) / FRAME_HOP) + 1,
    0 below FRAME_WINDOW."""
    n = (lengths - FRAME_WINDOW) // FRAME_HOP + 1
    return n.clamp(min=0) if hasattr(n, "clamp") else max(n, 0)


class AudioError(RuntimeError):
    """An utterance's audio cannot be read."""


@lru_cache(maxsize=16)
def _resampler(orig: int, new: int):
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)


def to_mono(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """``samples``: (T,) or (T, C) float at ``rate`` Hz -> (T',) float32 mono at ``target`` Hz (channels
    averaged; resampled where the rates differ: up to our 16 kHz, or down for band-limited copies)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != target:
        import torch

        with torch.no_grad():
            x = _resampler(rate, target)(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _run_pipe(utt: str, entry: str) -> bytes:
    cmd = entry.rstrip()[:-1].strip()
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {cmd}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise AudioError(
            f"utterance '{utt}': pipe command failed with exit code {proc.returncode}: {cmd!r}: " + " | ".join(err)
        )
    if not proc.stdout:
        raise AudioError(f"utterance '{utt}': pipe command wrote no audio: {cmd!r}")
    return proc.stdout


def entry_kind(entry: str) -> str:
    """What a wav.scp value is: ``"pipe"`` (ends with ``|``), ``"ark"`` (``file.ark:offset`` that is
    not itself a file name) or ``"file"``."""
    entry = entry.strip()
    if entry.endswith("|"):
        return "pipe"
    if ":" in entry and entry.rsplit(":", 1)[1].isdigit() and not os.path.isfile(entry):
        return "ark"
    return "file"


def read_entry(utt: str, entry: str) -> tuple[np.ndarray, int]:
    """Read one wav.scp value at its own sample rate: ``(samples (T,) or (T, C), rate)``."""
    entry = entry.strip()
    kind = entry_kind(entry)
    if kind == "pipe":
        data = _run_pipe(utt, entry)
        try:
            x, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile's errors are terse; add context
            raise AudioError(f"utterance '{utt}': pipe output is not readable audio ({e}): {entry!r}") from None
        return x, rate
    if kind == "ark":
        import kaldiio

        path = entry.rsplit(":", 1)[0]
        if not os.path.isfile(path):
            raise AudioError(f"utterance '{utt}': file not found: {path!r} (wav.scp entry {entry!r})")
        try:
            rate, x = kaldiio.load_mat(entry)
        except Exception as e:
            raise AudioError(f"utterance '{utt}': cannot read ark entry {entry!r}: {e}") from None
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.integer):
            x = x.astype(np.float32) / 32768.0
        return x, int(rate)
    if not os.path.isfile(entry):
        raise AudioError(f"utterance '{utt}': file not found: {entry!r}")
    try:
        x, rate = sf.read(entry, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"utterance '{utt}': cannot read audio file {entry!r}: {e}") from None
    missing = wav_missing_bytes(entry)
    if missing > 0:
        raise AudioError(f"utterance '{utt}': audio file {entry!r} is truncated: {missing} bytes of its data chunk "
                         "are missing")
    return x, rate


def wav_missing_bytes(path: str) -> int:
    """For a RIFF/WAVE file, how many bytes of the data chunk its header promises
    but the file lacks (0 for complete files, streamed headers and other formats).
    libsndfile silently reads what is there, so truncation must be checked here."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        size = os.fstat(f.fileno()).st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            cid, clen = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if cid == b"data":
                if clen in (0, 0xFFFFFFFF):  # written by a stream: length unknown
                    return 0
                return max(0, pos + 8 + clen - size)
            pos += 8 + clen + (clen & 1)
    return 0


def load_utterance(
    utt: str, entry: str, segment: tuple[float, float] | None = None, target_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Read an utterance as (T,) float32 mono at ``target_rate``.

    ``segment``: optional ``(start, end)`` in seconds within the recording.
    """
    x, rate = read_entry(utt, entry)
    return segment_audio(utt, x, rate, segment, entry, target_rate)


def load_audio_file(path: str | os.PathLike, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A plain audio file (never a pipe or an ark offset: a file name is only a file name) as (T,)
    float32 mono at ``target_rate``; AudioError names the file and what is wrong."""
    path = str(path)
    if os.path.isdir(path):
        raise AudioError(f"{path}: a directory, not an audio file")
    if not os.path.isfile(path):
        raise AudioError(f"{path}: file not found")
    try:
        x, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors are terse; add context
        raise AudioError(f"{path}: not readable as audio ({e})") from None
    missing = wav_missing_bytes(path)
    if missing > 0:
        raise AudioError(f"{path}: truncated: {missing} bytes of its data chunk are missing")
    if len(x) == 0:
        raise AudioError(f"{path}: empty (no samples)")
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: contains NaN or Inf")
    return to_mono(x, rate, target_rate)


def cut_segment(utt: str, x: np.ndarray, rate: int, segment: tuple[float, float], where: str) -> np.ndarray:
    """``x[start:end]`` for a segment in seconds; up to 20 ms past the end is tolerated."""
    start, end = segment
    a, b = int(round(start * rate)), int(round(end * rate))
    if a >= len(x) or b > len(x) + int(0.02 * rate):
        raise AudioError(
            f"utterance '{utt}': segment {start}-{end} s is outside the recording ({len(x) / rate:.3f} s) of {where!r}"
        )
    return x[a:b]


def segment_audio(utt: str, x: np.ndarray, rate: int, segment: tuple[float, float] | None, where: str,
                  target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The utterance in a recording read by :func:`read_entry`: cut to ``segment`` (seconds) when
    given, checked (not empty, finite) and converted to (T,) float32 mono at ``target_rate``."""
    if segment is not None:
        x = cut_segment(utt, x, rate, segment, where)
    if len(x) == 0:
        raise AudioError(f"utterance '{utt}': audio is empty: {where!r}")
    if not np.isfinite(x).all():
        raise AudioError(f"utterance '{utt}': audio contains NaN or Inf: {where!r}")
    return to_mono(x, rate, target_rate)


def entry_seconds(utt: str, entry: str) -> float:
    """Duration of one wav.scp entry in seconds, from the file header where the entry is a plain
    audio file (no decoding), else by reading it (pipes, ark offsets)."""
    entry = entry.strip()
    if entry_kind(entry) == "file" and os.path.isfile(entry):
        try:
            info = sf.info(entry)
        except Exception as e:
            raise AudioError(f"utterance '{utt}': cannot read the header of audio file {entry!r}: {e}") from None
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    x, rate = read_entry(utt, entry)
    return len(x) / rate
