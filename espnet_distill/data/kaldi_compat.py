"""Kaldi's data-dir operations under Kaldi's names and semantics, so that a ``local/data.sh``
pasted from a Kaldi or ESPnet recipe runs here (the engines behind ``utils/copy_data_dir.sh``,
``utils/split_data.sh``, ``utils/perturb_data_dir_speed.sh``; Kaldi's subset forms are selectors of
data/subset.py).
Every function writes a new dir (never into its source) and returns the number of utterances."""
from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

from espnet_distill.data.audio import entry_kind
from espnet_distill.data.kaldi_dir import (
    ALL_TABLES,
    copy_subset,
    drop_stale_tables,
    same_dir,
    utt2spk_to_spk2utt,
)
from espnet_distill.data.tables import DataDirError, read_table, shard_utts, write_table

logger = logging.getLogger(__name__)

def copy_renamed(src: str | os.PathLike, dst: str | os.PathLike, utt_prefix: str = "", utt_suffix: str = "",
                 spk_prefix: str = "", spk_suffix: str = "") -> int:
    """Kaldi's ``copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S]``:
    a copy with utterance and speaker ids renamed (recording ids stay; without ``segments``,
    wav.scp is keyed by utterance and renamed with them)."""
    if same_dir(src, dst):
        raise DataDirError(f"copy: the destination {dst} is the source")
    s, t = Path(src), Path(dst)

    def utt(u: str) -> str:
        return f"{utt_prefix}{u}{utt_suffix}"

    def spk(x: str) -> str:
        return f"{spk_prefix}{x}{spk_suffix}"

    has_seg = (s / "segments").is_file()
    t.mkdir(parents=True, exist_ok=True)
    drop_stale_tables(t, {name for name in ALL_TABLES if (s / name).is_file()}, "copy")
    for name in ALL_TABLES:
        if not (s / name).is_file():
            continue
        items = read_table(s / name, allow_empty_value=True).items
        if name == "utt2spk":
            items = [(utt(k), spk(v)) for k, v in items]
        elif name in ("wav.scp", "reco2dur") and has_seg:
            pass  # keyed by recording
        else:
            items = [(utt(k), v) for k, v in items]
        write_table(t / name, items)
    write_table(t / "spk2utt", utt2spk_to_spk2utt(read_table(t / "utt2spk").items))
    return len(read_table(t / "utt2spk").keys())


def split_data(data_dir: str | os.PathLike, n: int, per_utt: bool = False) -> list[Path]:
    """Kaldi's ``split_data.sh [--per-utt] DIR N``: DIR/splitN/{1..N}, each a data dir; speakers stay
    whole unless ``per_utt``. Returns the part dirs."""
    d = Path(data_dir)
    u2s = read_table(d / "utt2spk")
    if per_utt:
        groups = [[u] for u in u2s.keys()]
    else:
        by_spk: dict[str, list[str]] = {}
        for u, s in u2s.items:
            by_spk.setdefault(s, []).append(u)
        groups = list(by_spk.values())
    if n < 1 or n > len(groups):
        raise DataDirError(f"{d}: cannot split {len(groups)} {'utterances' if per_utt else 'speakers'} into {n} parts")
    out = []
    for j in range(1, n + 1):
        part = d / f"split{n}{'utt' if per_utt else ''}" / str(j)
        copy_subset(d, part, [u for g in shard_utts(groups, j, n) for u in g])
        out.append(part)
    return out


def _speed_entry(entry: str, factor: float) -> str:
    entry = entry.strip()
    if entry_kind(entry) == "pipe":
        return f"{entry[:-1].strip()} | sox -t wav - -t wav - speed {factor:g} |"
    return f"sox {shlex.quote(entry)} -t wav - speed {factor:g} |"


def perturb_speed(src: str | os.PathLike, dst: str | os.PathLike, factor: float) -> int:
    """Kaldi's ``perturb_data_dir_speed.sh FACTOR SRC DST``: ids get the prefix ``sp<FACTOR>-``
    (utterances, speakers and recordings), audio goes through ``sox ... speed FACTOR`` (a pipe in
    wav.scp), segment times and durations are divided by the factor."""
    if factor <= 0:
        raise DataDirError(f"perturb_speed: factor {factor}: expected a positive number")
    if same_dir(src, dst):
        raise DataDirError(f"perturb_speed: the destination {dst} is the source")
    s, t = Path(src), Path(dst)
    p = f"sp{factor:g}-"
    t.mkdir(parents=True, exist_ok=True)
    has_seg = (s / "segments").is_file()
    drop_stale_tables(t, {name for name in ALL_TABLES if (s / name).is_file()}, "perturb_speed")
    wav = read_table(s / "wav.scp").items
    write_table(t / "wav.scp", [(p + k, _speed_entry(v, factor)) for k, v in wav])
    write_table(t / "utt2spk", [(p + k, p + v) for k, v in read_table(s / "utt2spk").items])
    if (s / "text").is_file():
        write_table(t / "text", [(p + k, v) for k, v in read_table(s / "text", allow_empty_value=True).items])
    if has_seg:
        rows = []
        for k, v in read_table(s / "segments").items:
            reco, a, b = v.split()
            rows.append((p + k, f"{p}{reco} {float(a) / factor:.3f} {float(b) / factor:.3f}"))
        write_table(t / "segments", rows)
    for name in ("utt2dur", "reco2dur"):
        if (s / name).is_file():
            write_table(t / name, [(p + k, f"{float(v) / factor:.4f}") for k, v in read_table(s / name).items])
    write_table(t / "spk2utt", utt2spk_to_spk2utt(read_table(t / "utt2spk").items))
    return len(read_table(t / "utt2spk").keys())
