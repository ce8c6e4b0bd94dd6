"""Subsets of a Kaldi data dir: one engine behind both forms of ``utils/subset_data_dir.sh``, one
meaning per selector.

A selector picks utterance ids from the source's ``utt2spk`` (sorted); :func:`subset_data_dir`
copies them, with the recordings they use, to a new dir (never into its source). The selectors
(:data:`SELECTORS`, each ``(Pool, value) -> [utt]``):

    evenly N          N utterances spread evenly over the sorted list (Kaldi, no flag)
    first N           the first N utterances (Kaldi's and our ``--first``)
    last N            the last N utterances (Kaldi ``--last``)
    shortest N        the N shortest, by utt2dur or segments (Kaldi ``--shortest``)
    per-spk N         the first N utterances of every speaker (Kaldi ``--per-spk``)
    whole-speakers N  whole speakers, spread evenly over the sorted speakers, until at least N
                      utterances (Kaldi ``--speakers N``)
    random N          N utterances drawn with the seed (ours ``--random``)
    seconds S         utterances in a seed-shuffled order until their total reaches S seconds
    speakers A,B      every utterance of the named speakers (ours ``--speakers``)
    utt-list FILE     the utterances listed in FILE (first field of each line)
    spk-list FILE     every utterance of the speakers listed in FILE

Asking a count selector for more utterances than the dir has is an error, as in Kaldi.
"""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from espnet_distill.data.kaldi_dir import copy_subset, same_dir, utt_durations
from espnet_distill.data.tables import DataDirError, read_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pool:
    """What the selectors choose from: the source dir, its sorted utterances and their speakers."""

    src: Path
    utt2spk: list[tuple[str, str]]
    seed: int = 0

    @cached_property
    def utts(self) -> list[str]:
        return [u for u, _ in self.utt2spk]

    def by_speaker(self) -> dict[str, list[str]]:
        """Speaker -> utterances, both in the dir's sorted order."""
        out: dict[str, list[str]] = {}
        for u, spk in self.utt2spk:
            out.setdefault(spk, []).append(u)
        return out


Selector = Callable[[Pool, str], list[str]]
SELECTORS: dict[str, Selector] = {}
COUNT_SELECTORS = ("evenly", "first", "last", "shortest", "random")  # N <= the dir's utterances


def selector(name: str) -> Callable[[Selector], Selector]:
    def register(fn: Selector) -> Selector:
        SELECTORS[name] = fn
        return fn

    return register


def _count(pool: Pool, value: str, name: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise DataDirError(f"subset: {name} {value!r}: expected a number of utterances") from None
    if n < 1:
        raise DataDirError(f"subset: {name} {n}: expected at least 1 utterance")
    if name in COUNT_SELECTORS and n > len(pool.utts):
        raise DataDirError(f"{pool.src}: asked for {n} utterances ({name}) but it has only {len(pool.utts)}")
    return n


@selector("evenly")
def _evenly(pool: Pool, value: str) -> list[str]:
    n = _count(pool, value, "evenly")
    return [pool.utts[i * len(pool.utts) // n] for i in range(n)]


@selector("first")
def _first(pool: Pool, value: str) -> list[str]:
    return pool.utts[:_count(pool, value, "first")]


@selector("last")
def _last(pool: Pool, value: str) -> list[str]:
    return pool.utts[-_count(pool, value, "last"):]


@selector("shortest")
def _shortest(pool: Pool, value: str) -> list[str]:
    n = _count(pool, value, "shortest")
    dur = utt_durations(pool.src, write=False)
    return sorted(pool.utts, key=lambda u: (dur[u], u))[:n]


@selector("per-spk")
def _per_spk(pool: Pool, value: str) -> list[str]:
    n = _count(pool, value, "per-spk")
    return [u for us in pool.by_speaker().values() for u in us[:n]]


@selector("whole-speakers")
def _whole_speakers(pool: Pool, value: str) -> list[str]:
    n = _count(pool, value, "whole-speakers")
    by_spk = pool.by_speaker()
    spks = sorted(by_spk)
    m = min(len(spks), max(1, round(n * len(spks) / len(pool.utts))))  # speakers for about n utterances
    order = [spks[i * len(spks) // m] for i in range(m)] + spks  # evenly spread first, then the rest
    sel: list[str] = []
    for spk in dict.fromkeys(order):
        if len(sel) >= n:
            break
        sel += by_spk[spk]
    return sel


@selector("random")
def _random(pool: Pool, value: str) -> list[str]:
    return random.Random(pool.seed).sample(pool.utts, _count(pool, value, "random"))


@selector("seconds")
def _seconds(pool: Pool, value: str) -> list[str]:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise DataDirError(f"subset: --seconds {value}: expected a positive duration")
    dur = utt_durations(pool.src, write=False)
    order = list(pool.utts)
    random.Random(pool.seed).shuffle(order)
    sel, total = [], 0.0
    for u in order:
        if total >= seconds:
            break
        sel.append(u)
        total += dur[u]
    if total < seconds:
        logger.warning("%s: has only %.1f s of audio; asked for %.1f s, taking all", pool.src, total, seconds)
    return sel


@selector("speakers")
def _speakers(pool: Pool, value: str) -> list[str]:
    wanted = {s for s in value.split(",") if s}
    have = {spk for _, spk in pool.utt2spk}
    if not wanted or wanted - have:
        raise DataDirError(f"{pool.src}: unknown speaker(s) {sorted(wanted - have) or [value]} (known: {sorted(have)})")
    return [u for u, spk in pool.utt2spk if spk in wanted]


def _listed(path: str) -> set[str]:
    return {line.split()[0] for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}


@selector("utt-list")
def _utt_list(pool: Pool, value: str) -> list[str]:
    wanted = _listed(value)
    sel = [u for u in pool.utts if u in wanted]
    if not sel:
        raise DataDirError(f"{value}: none of its utterances is in {pool.src}")
    return sel


@selector("spk-list")
def _spk_list(pool: Pool, value: str) -> list[str]:
    wanted = _listed(value)
    sel = [u for u, spk in pool.utt2spk if spk in wanted]
    if not sel:
        raise DataDirError(f"{value}: none of its speakers is in {pool.src}")
    return sel


def subset_data_dir(src: str | os.PathLike, dst: str | os.PathLike, how: str, value: str | int | float,
                    seed: int = 0) -> int:
    """Write the utterances of ``src`` that selector ``how`` (:data:`SELECTORS`) picks with
    ``value`` to ``dst``; ``seed`` drives ``random`` and ``seconds``. Returns the number written."""
    if how not in SELECTORS:
        raise DataDirError(f"subset: unknown selector '{how}'; choose one of {sorted(SELECTORS)}")
    if same_dir(src, dst):
        raise DataDirError(f"subset: the destination {dst} is the source: that would replace it by a part of "
                           "itself; write the subset to another dir")
    s = Path(src)
    pool = Pool(s, read_table(s / "utt2spk").items, seed)
    return copy_subset(s, dst, SELECTORS[how](pool, str(value)))
