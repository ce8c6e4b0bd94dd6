"""Utterances of a Kaldi data dir as training examples, batched by total audio length.

- :class:`AudioDataset` reads a data dir (segments-aware) and optional per-utterance
  frame targets; utterances longer than ``max_seconds`` or shorter than ``min_samples``
  are dropped with a logged count (never a crash).
- :class:`BucketBatches` groups utterances of similar length so that a batch's padded
  size (batch x longest) stays under ``max_batch_seconds``: one long utterance cannot
  blow memory. The order is a pure function of (seed, epoch), so a run resumes exactly
  from (epoch, batch index), and under DDP each rank takes every world-th batch.
- :func:`collate` pads waveforms (B, L) and frame targets (B, T) (with ``IGNORE``).
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from espnet_distill.data.audio import load_utterance, read_entry, to_mono_16k, cut_segment
from espnet_distill.data.kaldi_dir import read_table, utt_durations

logger = logging.getLogger(__name__)

IGNORE = -100


class AudioDataset(torch.utils.data.Dataset):
    """Examples ``{"utt", "wav" (L,) float32, **targets}`` of a Kaldi data dir."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        targets: dict[str, dict[str, np.ndarray]] | None = None,
        max_seconds: float | None = None,
        min_samples: int = 400,
        preload: bool = False,
    ):
        d = Path(data_dir)
        self.data_dir = d
        self.wav = read_table(d / "wav.scp").as_dict()
        self.segments = read_table(d / "segments").as_dict() if (d / "segments").is_file() else None
        durs = utt_durations(d)
        utts = read_table(d / "utt2spk").keys()
        keep, too_long, too_short, no_target = [], 0, 0, 0
        for u in utts:
            if max_seconds is not None and durs[u] > max_seconds:
                too_long += 1
            elif durs[u] * 16000 < min_samples:
                too_short += 1
            elif targets is not None and any(u not in t for t in targets.values()):
                no_target += 1
            else:
                keep.append(u)
        if too_long:
            logger.warning("%s: dropped %d utterances longer than %.1f s", d, too_long, max_seconds)
        if too_short:
            logger.warning("%s: dropped %d utterances shorter than %d samples", d, too_short, min_samples)
        if no_target:
            logger.warning("%s: dropped %d utterances without targets", d, no_target)
        if not keep:
            raise ValueError(f"{d}: no utterance left after filtering ({len(utts)} in the dir)")
        self.utts = keep
        self.samples = [int(round(durs[u] * 16000)) for u in keep]
        self.targets = targets or {}
        self._cache: dict[str, np.ndarray] | None = {} if preload else None

    def __len__(self) -> int:
        return len(self.utts)

    def load(self, utt: str) -> np.ndarray:
        if self._cache is not None and utt in self._cache:
            return self._cache[utt]
        if self.segments is None:
            x = load_utterance(utt, self.wav[utt])
        else:
            reco, a, b = self.segments[utt].split()
            y, rate = read_entry(utt, self.wav[reco])
            x = to_mono_16k(cut_segment(utt, y, rate, (float(a), float(b)), self.wav[reco]), rate)
        if self._cache is not None:
            self._cache[utt] = x
        return x

    def __getitem__(self, i: int) -> dict:
        utt = self.utts[i]
        item = {"utt": utt, "wav": self.load(utt)}
        for name, table in self.targets.items():
            item[name] = table[utt]
        return item


class BucketBatches(torch.utils.data.Sampler):
    """Length-bucketed batches of indices under a padded-audio budget.

    ``lengths``: samples per utterance. A batch holds utterances of similar length with
    ``len(batch) * max(length) <= max_batch_seconds * 16000`` (a single longer utterance
    forms its own batch). Batches are shuffled with ``seed + epoch``; ``rank``/``world``
    give each DDP process every world-th batch (all ranks get the same count).
    """

    def __init__(self, lengths: list[int], max_batch_seconds: float, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world: int = 1, max_batch_size: int | None = None):
        self.lengths = lengths
        self.budget = int(max_batch_seconds * 16000)
        self.shuffle, self.seed, self.rank, self.world = shuffle, seed, rank, world
        self.max_batch_size = max_batch_size
        self.epoch = 0
        self.start = 0  # batches of this epoch already consumed (for resuming)
        self._batches = self._make()

    def _make(self) -> list[list[int]]:
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        batches, cur = [], []
        for i in order:
            longest = max(self.lengths[i], max((self.lengths[j] for j in cur), default=0))
            full = (len(cur) + 1) * longest > self.budget
            if self.max_batch_size is not None:
                full = full or len(cur) + 1 > self.max_batch_size
            if cur and full:
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        batches = list(self._batches)
        if self.shuffle:
            random.Random(self.seed * 100003 + epoch).shuffle(batches)
        n = len(batches) // self.world * self.world or len(batches)
        return batches[:n][self.rank::self.world] if self.world > 1 else batches

    def __len__(self) -> int:
        return len(self.epoch_batches(self.epoch))

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        yield from self.epoch_batches(self.epoch)[self.start:]


def collate(items: list[dict]) -> dict:
    """Pad a list of examples: ``wav`` (B, L) float, ``lengths`` (B,), frame targets (B, T, ...)."""
    n = len(items)
    lengths = torch.tensor([len(it["wav"]) for it in items])
    wav = torch.zeros(n, int(lengths.max()))
    for i, it in enumerate(items):
        wav[i, : len(it["wav"])] = torch.from_numpy(np.asarray(it["wav"]))
    out = {"utt": [it["utt"] for it in items], "wav": wav, "lengths": lengths}
    for key in items[0]:
        if key in ("utt", "wav"):
            continue
        arrs = [torch.as_tensor(np.asarray(it[key])) for it in items]
        t = max(a.shape[0] for a in arrs)
        fill = IGNORE if not arrs[0].is_floating_point() else 0.0
        pad = torch.full((n, t, *arrs[0].shape[1:]), fill, dtype=arrs[0].dtype)
        for i, a in enumerate(arrs):
            pad[i, : a.shape[0]] = a
        out[key] = pad
    return out
