"""Kaldi tables: ``<key> <value>`` lines, read with errors that name the file and line.

The bottom of the data layer (data directories, audio readers, dumps and label files all
read and write tables through it). Every error is a :class:`DataDirError` naming the file,
the line and what is wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from espnet_distill.checkpoint_io import atomic_path


class DataDirError(ValueError):
    """A data directory (or one of its files) is malformed."""


@dataclass
class Table:
    """One Kaldi table: ordered (key, value) pairs plus where each came from."""

    path: Path
    items: list[tuple[str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def keys(self) -> list[str]:
        return [k for k, _ in self.items]

    def as_dict(self) -> dict[str, str]:
        return dict(self.items)


def read_table(path: str | os.PathLike, allow_empty_value: bool = False) -> Table:
    """Read ``<key> <value>`` lines. Duplicate keys, non-UTF-8 bytes and
    (unless ``allow_empty_value``) missing values raise :class:`DataDirError`.

    Sorting is not checked here; see :func:`check_sorted`.
    """
    path = Path(path)
    table = Table(path)
    seen: dict[str, int] = {}
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataDirError(f"{path}: file not found") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raise DataDirError(f"{path}:1: starts with a UTF-8 byte-order mark (BOM), which Kaldi tables do not "
                           f"have; remove it: sed -i '1s/^\\xEF\\xBB\\xBF//' {path}")
    for lineno, bline in enumerate(raw.split(b"\n"), start=1):
        if not bline.strip():
            continue
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataDirError(
                f"{path}:{lineno}: not valid UTF-8 (byte {bline[e.start:e.start + 1]!r} at column {e.start + 1})"
            ) from None
        line = line.rstrip("\r")
        parts = line.strip().split(maxsplit=1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise DataDirError(f"{path}:{lineno}: key '{key}' has an empty value: {line!r}")
        if key in seen:
            raise DataDirError(f"{path}:{lineno}: duplicate id '{key}' (first on line {seen[key]})")
        seen[key] = lineno
        table.items.append((key, value))
        table.lines.append(lineno)
    return table


def check_sorted(table: Table) -> None:
    """Raise if keys are not in ``LC_ALL=C sort`` order (byte order)."""
    prev = None
    for (key, _), lineno in zip(table.items, table.lines):
        if prev is not None and key.encode() < prev.encode():
            raise DataDirError(
                f"{table.path}:{lineno}: not sorted: '{key}' comes after '{prev}' "
                f"(sort with LC_ALL=C sort, or run utils/fix_data_dir.sh)"
            )
        prev = key


def write_table(path: str | os.PathLike, items: Iterable[tuple[str, str]], sort: bool = True) -> None:
    """Write a table atomically (temp file + rename), sorted by key in byte order."""
    path = Path(path)
    items = list(items)
    if sort:
        items.sort(key=lambda kv: kv[0].encode())
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for k, v in items:
            f.write(f"{k} {v}\n")




@dataclass(frozen=True)
class Segment:
    """One line of ``segments``: ``<utt> <reco> <start-s> <end-s>``."""

    reco: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def parse_segment(table: Table, key: str, value: str, lineno: int) -> Segment:
    """The one reading of a ``segments`` value; a malformed one raises :class:`DataDirError` naming
    the file and line (three fields, numbers, ``0 <= start < end``)."""
    parts = value.split()
    if len(parts) != 3:
        raise DataDirError(f"{table.path}:{lineno}: expected '<utt> <reco> <start> <end>', got '{key} {value}'")
    try:
        start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise DataDirError(f"{table.path}:{lineno}: start/end of '{key}' are not numbers: {value!r}") from None
    if start < 0 or end <= start:
        raise DataDirError(f"{table.path}:{lineno}: segment '{key}' has start {start} and end {end} "
                           "(need 0 <= start < end)")
    return Segment(parts[0], start, end)


def read_segments(table: Table) -> dict[str, Segment]:
    """utt -> :class:`Segment` of a ``segments`` table, every line checked by :func:`parse_segment`."""
    return {k: parse_segment(table, k, v, n) for (k, v), n in zip(table.items, table.lines)}


def table_lines(table: Table) -> dict[str, str]:
    """``{key: "path:line"}`` of a table, for error messages that point at the line."""
    return {k: f"{table.path}:{n}" for (k, _), n in zip(table.items, table.lines)}


def shard_utts(utts: list[str], shard: int, num_shards: int) -> list[str]:
    """The contiguous ``shard``-th (1-based) of ``num_shards`` near-equal chunks of ``utts``
    (contiguous, so that the segments of one recording stay together): what job JOB of a
    ``JOB=1:N`` array works on."""
    if not 1 <= shard <= num_shards:
        raise ValueError(f"shard {shard} is not in 1..{num_shards}")
    n = len(utts)
    return utts[(shard - 1) * n // num_shards: shard * n // num_shards]
