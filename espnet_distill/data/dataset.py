"""Utterances of a Kaldi data dir as training examples, batched by total audio length.

- :class:`AudioDataset` reads a data dir (segments-aware) and optional per-utterance
  frame targets; utterances shorter than ``min_samples`` are dropped with a logged count (never a
  crash), and those longer than ``max_seconds`` are dropped too, or (``long_utts="crop"``, as
  s3prl's distiller does) cut to ``max_seconds`` from a random start, a multiple of the 20 ms
  frame hop drawn from (seed, epoch, utterance): the same crop on resume and in any process.
  Audio is streamed: each item is decoded
  when it is asked for (by DataLoader workers in training), nothing corpus-sized is kept
  unless ``cache_audio`` is asked for. Lengths come from ``utt2dur`` (the data stage writes
  it); an utterance whose audio is longer than its recorded duration is cropped to it (a
  stale ``utt2dur`` cannot blow the batch budget), and one whose audio cannot be read is
  skipped when ``skip_bad_audio`` is set; both are logged and counted per batch.
- :class:`BucketBatches` groups utterances of similar length so that an update's padded
  size (utterances x longest) stays under a budget: one long utterance cannot blow memory.
  The batches and their order are a pure function of (lengths, budget, seed, epoch), never of
  the number of processes: each update's batch is formed for the whole world first and then
  split into ``world x accum_grad`` contiguous shares (:func:`split_shares`), so a run resumes
  exactly from (epoch, update index) and N processes train on the utterances one would.
- :func:`collate` pads waveforms (B, L) and frame targets (B, T) (with ``IGNORE``), and
  drops skipped items (``bad_utts``, ``cropped_utts``: the batch's counts).
"""
from __future__ import annotations

import logging
import os
import random
import zlib
from pathlib import Path

import numpy as np
import torch

from espnet_distill.data.audio import FRAME_HOP, FRAME_WINDOW, SAMPLE_RATE, AudioError
from espnet_distill.data.kaldi_dir import utt_durations
from espnet_distill.data.tables import DataDirError, read_table
from espnet_distill.data.utterances import DataDirAudio

logger = logging.getLogger(__name__)

IGNORE = -100
LONG_UTTS = ("drop", "crop")  # what becomes of training utterances over max_seconds
CROP_TOLERANCE = 160  # samples (10 ms) an utterance may exceed its recorded duration before it is cropped


class AudioDataset(torch.utils.data.Dataset):
    """Examples ``{"utt", "wav" (L,) float32, **targets}`` of a Kaldi data dir."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        targets: dict[str, dict[str, np.ndarray]] | None = None,
        max_seconds: float | None = None,
        min_samples: int = FRAME_WINDOW,
        cache_audio: bool = False,
        skip_bad_audio: bool = False,
        utts: list[str] | None = None,
        long_utts: str = "drop",
        seed: int = 0,
    ):
        """``utts``: only these utterances of the dir (one job's shard), in this order. ``long_utts``:
        ``drop`` or ``crop`` utterances over ``max_seconds`` (crops are drawn with ``seed`` and
        :attr:`epoch`, which the trainer sets before each epoch's loader). The defaults are the strict
        ones that decoding and analysis need (no utterance lost or cut without being asked); training
        passes TrainConfig's (``skip_bad_audio`` and ``crop``). A malformed dir raises DataDirError."""
        if long_utts not in LONG_UTTS:
            raise ValueError(f"long_utts {long_utts!r}: expected {' or '.join(LONG_UTTS)}")
        crop = long_utts == "crop" and max_seconds is not None
        d = Path(data_dir)
        self.data_dir = d
        self.audio = DataDirAudio(d)
        durs = utt_durations(d)
        if utts is None:
            utts = read_table(d / "utt2spk").keys()
        keep, too_long, too_short, no_target = [], 0, 0, 0
        for u in utts:
            if u not in durs:
                raise DataDirError(f"{d / 'utt2dur'}: no duration for utterance '{u}' (stale file? rerun "
                                   f"utils/data/get_utt2dur.sh {d})")
            if max_seconds is not None and durs[u] > max_seconds and not crop:
                too_long += 1
            elif durs[u] * SAMPLE_RATE < min_samples:
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
            raise DataDirError(f"{d}: no utterance left after filtering ({len(utts)} in the dir)")
        self.utts = keep
        self.samples = [int(round(durs[u] * SAMPLE_RATE)) for u in keep]
        self.crop_to = int(max_seconds * SAMPLE_RATE) if crop else None
        if self.crop_to is not None:
            n = sum(1 for x in self.samples if x > self.crop_to)
            if n:
                logger.info("%s: %d utterances longer than %.2f s are cropped to it (random start per epoch)", d, n,
                            max_seconds)
            self.samples = [min(x, self.crop_to) for x in self.samples]
        self.seed, self.epoch = seed, 0
        self.targets = targets or {}
        self.skip_bad_audio = skip_bad_audio
        self._cache: dict[str, np.ndarray] | None = {} if cache_audio else None

    def __len__(self) -> int:
        return len(self.utts)

    def load(self, utt: str) -> np.ndarray:
        """(L,) float32 16 kHz audio of ``utt`` (AudioError naming the utterance and entry)."""
        if self._cache is not None and utt in self._cache:
            return self._cache[utt]
        x = self.audio.load(utt)
        if self._cache is not None:
            self._cache[utt] = x
        return x

    def __getitem__(self, i: int) -> dict:
        utt = self.utts[i]
        try:
            wav = self.load(utt)
        except AudioError as e:
            if not self.skip_bad_audio:
                raise
            logger.warning("skipping %s", e)
            return {"utt": utt, "bad": str(e)}
        item = {"utt": utt, "wav": wav}
        start = 0
        if self.crop_to is not None and len(wav) > self.crop_to:
            start = crop_start(len(wav), self.crop_to, self.seed, self.epoch, utt)
            wav = item["wav"] = wav[start:start + self.crop_to]
        if len(wav) > self.samples[i] + CROP_TOLERANCE:
            logger.warning("utterance '%s' has %.2f s of audio but %.2f s in %s/utt2dur: cropped to %.2f s "
                           "(stale utt2dur? rerun utils/data/get_utt2dur.sh)", utt, len(wav) / SAMPLE_RATE,
                           self.samples[i] / SAMPLE_RATE, self.data_dir, self.samples[i] / SAMPLE_RATE)
            item["wav"], item["cropped"] = wav[: self.samples[i]], True
        for name, table in self.targets.items():
            item[name] = table[utt][start // FRAME_HOP:]  # frame targets follow a crop (collate cuts the end)
        return item


def split_shares(batch: list[int], n: int) -> list[list[int]]:
    """``batch`` cut into ``n`` contiguous shares whose sizes differ by at most one, the larger
    ones first (12 over 5: 3, 3, 2, 2, 2; 2 over 5: 1, 1, 0, 0, 0)."""
    q, r = divmod(len(batch), n)
    bounds = [0]
    for i in range(n):
        bounds.append(bounds[-1] + q + (1 if i < r else 0))
    return [batch[bounds[i]:bounds[i + 1]] for i in range(n)]


def crop_start(length: int, keep: int, seed: int, epoch: int, utt: str) -> int:
    """A start for a crop of ``keep`` of ``length`` samples: a multiple of the frame hop, drawn from
    (seed, epoch, utterance) alone (no process-wide random state)."""
    positions = (length - keep) // FRAME_HOP + 1
    return random.Random(zlib.crc32(f"{seed}:{epoch}:{utt}".encode())).randrange(positions) * FRAME_HOP


class BucketBatches(torch.utils.data.Sampler):
    """Length-bucketed update batches of indices under a padded-audio budget, and this process's
    shares of them.

    ``lengths``: samples per utterance. An update's batch holds utterances of similar length with
    ``len(batch) * max(length) <= max_batch_seconds * SAMPLE_RATE`` and at most ``max_batch_size``
    utterances (a single longer utterance forms its own batch). Batches are shuffled with
    ``seed + epoch``. Iterating yields, per update, this process's ``accum_grad`` shares
    ``split_shares(batch, world * accum_grad)[m * world + rank]`` for m = 0 .. accum_grad - 1;
    a share may be empty (more processes than utterances): the process still takes part in the
    update's collectives.
    """

    def __init__(self, lengths: list[int], max_batch_seconds: float, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world: int = 1, max_batch_size: int | None = None, accum_grad: int = 1):
        self.lengths = lengths
        self.budget = int(max_batch_seconds * SAMPLE_RATE)
        self.shuffle, self.seed, self.rank, self.world = shuffle, seed, rank, world
        self.max_batch_size = max_batch_size
        self.accum_grad = accum_grad
        self.epoch = 0
        self.start = 0  # updates of this epoch already consumed (for resuming)
        self._batches = self._make()
        self._shuffled: tuple[int, list[list[int]]] | None = None

    def _make(self) -> list[list[int]]:
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        batches, cur, cur_longest = [], [], 0
        for i in order:
            longest = max(self.lengths[i], cur_longest)
            full = (len(cur) + 1) * longest > self.budget
            if self.max_batch_size is not None:
                full = full or len(cur) + 1 > self.max_batch_size
            if cur and full:
                batches.append(cur)
                cur, longest = [], self.lengths[i]
            cur.append(i)
            cur_longest = longest
        if cur:
            batches.append(cur)
        return batches

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The update batches of ``epoch``, whole (the same for every process)."""
        if self._shuffled is None or self._shuffled[0] != epoch:
            batches = list(self._batches)
            if self.shuffle:
                random.Random(self.seed * 100003 + epoch).shuffle(batches)
            self._shuffled = (epoch, batches)
        return self._shuffled[1]

    def update_batch(self, epoch: int, index: int) -> list[int]:
        """The whole batch of update ``index`` of ``epoch``."""
        return self.epoch_batches(epoch)[index]

    def my_shares(self, batch: list[int]) -> list[list[int]]:
        """This process's ``accum_grad`` shares of one update's batch."""
        shares = split_shares(batch, self.world * self.accum_grad)
        return [shares[m * self.world + self.rank] for m in range(self.accum_grad)]

    def __len__(self) -> int:
        return len(self.epoch_batches(self.epoch)) * self.accum_grad

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        for batch in self.epoch_batches(self.epoch)[self.start:]:
            yield from self.my_shares(batch)


def collate(items: list[dict]) -> dict:
    """Pad a list of examples: ``wav`` (B, L) float, ``lengths`` (B,), frame targets (B, T, ...);
    ``bad_utts`` / ``cropped_utts``: how many items were skipped (unreadable) or cropped.
    A batch whose every item is unreadable is ``{"utt": [], "bad_utts": n, "bad": [reasons]}``."""
    bad = [it for it in items if "bad" in it]
    cropped = sum(1 for it in items if it.get("cropped"))
    items = [{k: v for k, v in it.items() if k != "cropped"} for it in items if "bad" not in it]
    if not items:
        return {"utt": [], "bad_utts": len(bad), "cropped_utts": 0, "bad": [it["bad"] for it in bad]}
    n = len(items)
    lengths = torch.tensor([len(it["wav"]) for it in items])
    wav = torch.zeros(n, int(lengths.max()))
    for i, it in enumerate(items):
        wav[i, : len(it["wav"])] = torch.from_numpy(np.asarray(it["wav"]))
    out = {"utt": [it["utt"] for it in items], "wav": wav, "lengths": lengths, "bad_utts": len(bad),
           "cropped_utts": cropped}
    for key in items[0]:
        if key in ("utt", "wav", "bad_utts", "cropped_utts"):
            continue
        arrs = [torch.as_tensor(np.asarray(it[key])) for it in items]
        t = max(a.shape[0] for a in arrs)
        fill = IGNORE if not arrs[0].is_floating_point() else 0.0
        pad = torch.full((n, t, *arrs[0].shape[1:]), fill, dtype=arrs[0].dtype)
        for i, a in enumerate(arrs):
            pad[i, : a.shape[0]] = a
        out[key] = pad
    return out
