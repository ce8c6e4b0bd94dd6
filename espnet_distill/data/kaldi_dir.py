"""Kaldi data directories: reading, writing, validating, fixing, combining (subsets: data/subset.py).

A data directory holds plain-text tables, one ``<key> <value>`` per line,
sorted by key in byte order (``LC_ALL=C sort``) with unique keys:

    wav.scp   <utt-or-reco> <path or "command |">
    text      <utt> <transcript>
    utt2spk   <utt> <spk>
    spk2utt   <spk> <utt1> <utt2> ...
    segments  <utt> <reco> <start-s> <end-s>          (optional)
    reco2dur  <reco> <seconds>                        (optional)
    utt2dur   <utt> <seconds>                         (optional, written by us)

Every error raised here is a :class:`DataDirError` whose message names the
file, the line number and what is wrong with it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterable

from espnet_distill.data.audio import SAMPLE_RATE, entry_kind, entry_seconds
from espnet_distill.data.tables import (
    DataDirError,
    Segment,
    Table,
    check_sorted,
    parse_segment,
    read_segments,
    read_table,
    table_lines,
    write_table,
)
from espnet_distill.data.utterances import iter_data_dir_audio

logger = logging.getLogger(__name__)

# Tables keyed by utterance id (segments are too).
UTT_TABLES = ("text", "utt2spk", "utt2dur", "segments")
# Tables keyed by recording id when segments exist, else by utterance id.
RECO_TABLES = ("wav.scp", "reco2dur")
ALL_TABLES = UTT_TABLES + RECO_TABLES
UTT2DUR_TOLERANCE = 0.05  # seconds an utt2dur value may differ from the audio read (resampling, rounding)


def drop_stale_tables(dst: Path, keep: set[str], why: str) -> None:
    """Remove the tables of an earlier dir at ``dst`` that are not in ``keep``: the new dir's
    sources lack them, so they would be stale (old segments, durations, ...)."""
    for name in ALL_TABLES:
        if name not in keep and (dst / name).is_file():
            logger.warning("%s: removing %s, which the sources do not have", why, dst / name)
            (dst / name).unlink()


def same_dir(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def utt2spk_to_spk2utt(utt2spk: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Invert utt2spk: ``[(spk, "utt1 utt2 ...")]`` with speakers and utterances sorted."""
    spk: dict[str, list[str]] = {}
    for utt, s in utt2spk:
        spk.setdefault(s, []).append(utt)
    return [(s, " ".join(sorted(u, key=str.encode))) for s, u in sorted(spk.items(), key=lambda kv: kv[0].encode())]


# ----------------------------------------------------------------------------- validation


def _float_value(table: Table, key: str, value: str, lineno: int) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DataDirError(f"{table.path}:{lineno}: duration of '{key}' is not a number: {value!r}") from None
    if x <= 0:
        raise DataDirError(f"{table.path}:{lineno}: duration of '{key}' is {x} (must be > 0)")
    return x


def _first_missing(needed: Table, have: set[str], what: str, where: Path) -> None:
    for (key, _), lineno in zip(needed.items, needed.lines):
        if key not in have:
            raise DataDirError(f"{needed.path}:{lineno}: {what} '{key}' is not in {where}")


def validate_data_dir(
    data_dir: str | os.PathLike,
    check_audio: bool = True,
    need_text: bool = True,
    progress: bool = False,
) -> dict:
    """Check a data dir; raise :class:`DataDirError` at the first problem.

    Checks: every table parses (UTF-8, unique ids, non-empty values), is sorted;
    text (when ``need_text``), utt2spk and wav.scp (or segments) cover the same
    utterances; spk2utt is the inverse of utt2spk; segments point at recordings
    in wav.scp with valid times (within reco2dur when given); with
    ``check_audio`` every utterance's audio is read.

    Returns a summary dict: ``{"utts", "spks", "seconds" (when audio was read)}``.
    """
    d = Path(data_dir)
    tables = _read_checked_tables(d, need_text)
    _check_utt2spk(tables["utt2spk"])
    audio_src = _check_recordings(tables)
    utt2dur = _check_coverage(tables, audio_src, need_text)
    spks = _check_spk2utt(d, tables)
    summary = {"utts": len(tables["utt2spk"].keys()), "spks": spks}
    if check_audio:
        summary["seconds"] = _check_audio(d, tables, utt2dur, progress)
    return summary


def _read_checked_tables(d: Path, need_text: bool) -> dict[str, Table]:
    """Every table of ``d`` that is there, parsed and checked sorted; the required ones must be."""
    if not d.is_dir():
        raise DataDirError(f"{d}: not a directory")
    for name in ("wav.scp", "utt2spk") + (("text",) if need_text else ()):
        if not (d / name).is_file():
            raise DataDirError(f"{d}: missing required file {name}")
    tables: dict[str, Table] = {}
    for name in ALL_TABLES + ("spk2utt",):
        if (d / name).is_file():
            tables[name] = read_table(d / name)
            check_sorted(tables[name])
    return tables


def _check_utt2spk(utt2spk: Table) -> None:
    for (utt, spk), lineno in zip(utt2spk.items, utt2spk.lines):
        if len(spk.split()) != 1:
            raise DataDirError(f"{utt2spk.path}:{lineno}: utterance '{utt}' has more than one speaker field: {spk!r}")


def _check_recordings(tables: dict[str, Table]) -> Table:
    """Segments (when there) point into wav.scp within reco2dur, whose values are numbers. Returns the
    table whose keys are the utterances with audio: segments, else wav.scp."""
    wav = tables["wav.scp"]
    wav_keys = set(wav.keys())
    reco2dur = tables.get("reco2dur")
    durations = {k: _float_value(reco2dur, k, v, lineno)
                 for (k, v), lineno in zip(reco2dur.items, reco2dur.lines)} if reco2dur is not None else {}
    segments = tables.get("segments")
    if segments is None:
        if reco2dur is not None:
            _first_missing(reco2dur, wav_keys, "recording", wav.path)
        return wav
    for (utt, value), lineno in zip(segments.items, segments.lines):
        seg = parse_segment(segments, utt, value, lineno)
        if seg.reco not in wav_keys:
            raise DataDirError(f"{segments.path}:{lineno}: recording '{seg.reco}' of utterance '{utt}' "
                               f"is not in {wav.path}")
        if seg.reco in durations and seg.end > durations[seg.reco] + 0.02:
            raise DataDirError(
                f"{segments.path}:{lineno}: segment '{utt}' ends at {seg.end} s, after the end of recording "
                f"'{seg.reco}' ({durations[seg.reco]} s in reco2dur)"
            )
    return segments


def _check_coverage(tables: dict[str, Table], audio_src: Table, need_text: bool) -> dict[str, float]:
    """utt2spk, the audio table, text and utt2dur name the same utterances (both ways). Returns
    utt2dur's durations (empty without it)."""
    utt2spk = tables["utt2spk"]
    utts = set(utt2spk.keys())
    _first_missing(utt2spk, set(audio_src.keys()), "utterance", audio_src.path)
    _first_missing(audio_src, utts, "utterance", utt2spk.path)
    if need_text or "text" in tables:
        _first_missing(tables["text"], utts, "utterance", utt2spk.path)
        _first_missing(utt2spk, set(tables["text"].keys()), "utterance", tables["text"].path)
    utt2dur: dict[str, float] = {}
    if "utt2dur" in tables:
        durs = tables["utt2dur"]
        _first_missing(durs, utts, "utterance", utt2spk.path)
        _first_missing(utt2spk, set(durs.keys()), "utterance", durs.path)
        for (k, v), lineno in zip(durs.items, durs.lines):
            utt2dur[k] = _float_value(durs, k, v, lineno)
    return utt2dur


def _check_spk2utt(d: Path, tables: dict[str, Table]) -> int:
    """spk2utt is utt2spk inverted. Returns the number of speakers."""
    utt2spk = tables["utt2spk"]
    if "spk2utt" not in tables:
        raise DataDirError(f"{d}: missing spk2utt (create it with utils/utt2spk_to_spk2utt.sh)")
    expected = dict(utt2spk_to_spk2utt(utt2spk.items))
    s2u = tables["spk2utt"]
    for (spk, us), lineno in zip(s2u.items, s2u.lines):
        if spk not in expected:
            raise DataDirError(f"{s2u.path}:{lineno}: speaker '{spk}' has no utterance in {utt2spk.path}")
        if sorted(us.split()) != sorted(expected[spk].split()):
            raise DataDirError(f"{s2u.path}:{lineno}: utterances of speaker '{spk}' disagree with {utt2spk.path}")
    missing = set(expected) - set(s2u.keys())
    if missing:
        raise DataDirError(f"{s2u.path}: speaker '{sorted(missing)[0]}' of {utt2spk.path} is missing")
    return len(expected)


def _check_audio(d: Path, tables: dict[str, Table], utt2dur: dict[str, float], progress: bool) -> float:
    """Every utterance's audio reads, and lasts what utt2dur says. Returns the total in seconds."""
    seconds = 0.0
    where = table_lines(tables["utt2dur"]) if utt2dur else {}
    for utt, wav_arr in iter_data_dir_audio(d, progress=progress):
        seconds += len(wav_arr) / SAMPLE_RATE
        if utt in utt2dur and abs(len(wav_arr) / SAMPLE_RATE - utt2dur[utt]) > UTT2DUR_TOLERANCE:
            raise DataDirError(
                f"{where[utt]}: utterance '{utt}' lasts {len(wav_arr) / SAMPLE_RATE:.3f} s, not the "
                f"{utt2dur[utt]} s of utt2dur (remove utt2dur and rerun utils/data/get_utt2dur.sh)")
    return seconds


# ----------------------------------------------------------------------------- fixing


def fix_data_dir(data_dir: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Keep only utterances present in every table; sort all tables; rebuild spk2utt.

    Originals are kept in ``<dir>/.backup/`` (a later run: ``.backup.1/``, ...; a backup is never
    overwritten). Segments whose end is not after their start are dropped. Returns, per file, how many lines
    were dropped and why (``{"text": {"not in wav.scp": 2}}``); also logged.
    """
    d = Path(data_dir)
    tables = {name: read_table(d / name, allow_empty_value=True) for name in ALL_TABLES if (d / name).is_file()}
    if "utt2spk" not in tables or "wav.scp" not in tables:
        raise DataDirError(f"{d}: fix_data_dir needs at least wav.scp and utt2spk")
    keep, reason_for, used_recos = _what_fix_keeps(tables)
    backup = _new_backup_dir(d)
    dropped: dict[str, dict[str, int]] = {}
    for name, table in tables.items():
        (backup / name).write_bytes(table.path.read_bytes())
        if name in RECO_TABLES and used_recos is not None:  # recordings: keep those still used
            kept = [(k, v) for k, v in table.items if k in used_recos]
            if len(kept) < len(table.items):
                dropped.setdefault(name, {})["recording without kept segments"] = len(table.items) - len(kept)
        else:
            kept = [(k, v) for k, v in table.items if k in keep]
            for k, _ in table.items:
                if k not in keep:
                    counts, why = dropped.setdefault(name, {}), reason_for(name, k)
                    counts[why] = counts.get(why, 0) + 1
        write_table(d / name, kept)
    write_table(d / "spk2utt", utt2spk_to_spk2utt(read_table(d / "utt2spk").items))
    for name, reasons in dropped.items():
        for why, count in reasons.items():
            logger.info("%s: dropped %d line(s) of %s: %s", d, count, name, why)
    logger.info("%s: kept %d utterances (originals in %s)", d, len(keep), backup)
    return dropped


def _what_fix_keeps(tables: dict[str, Table]) -> tuple[set[str], Callable[[str, str], str], set[str] | None]:
    """``(utterances kept, reason_for(table, key) of a dropped line, recordings still used or None
    without segments)``: an utterance is kept when it is in utt2spk, in text with a transcript (when
    there is text), in utt2dur (when there is one) and has audio: a plain file that exists (pipes and
    ark offsets are not checked), or a well-formed segment of such a recording."""
    wav = tables["wav.scp"]
    missing_audio = {k for k, v in wav.items if entry_kind(v) == "file" and not os.path.isfile(v.strip())}
    wav_keys = set(wav.keys()) - missing_audio
    seg_table = tables.get("segments")
    segs: dict[str, Segment] | None = None
    bad_segments: set[str] = set()
    if seg_table is not None:
        segs = {}
        for (utt, value), lineno in zip(seg_table.items, seg_table.lines):
            try:
                segs[utt] = parse_segment(seg_table, utt, value, lineno)
            except DataDirError:
                bad_segments.add(utt)
        audio = {u for u, x in segs.items() if x.reco in wav_keys}
    else:
        audio = wav_keys
    keep = set(tables["utt2spk"].keys()) & audio
    if "text" in tables:
        keep &= {k for k, v in tables["text"].items if v.strip()}
    if "utt2dur" in tables:
        keep &= set(tables["utt2dur"].keys())
    utt2spk = tables["utt2spk"].as_dict()
    text = tables["text"].as_dict() if "text" in tables else None

    def reason_for(name: str, key: str) -> str:
        if text is not None and not text.get(key, "-").strip():
            return "empty transcript"
        if name != "utt2spk" and key not in utt2spk:
            return "not in utt2spk"
        if name != "text" and text is not None and key not in text:
            return "not in text"
        if key in bad_segments:
            return "segment end not after its start (or not '<reco> <start> <end>')"
        if key in missing_audio or (segs is not None and key in segs and segs[key].reco in missing_audio):
            return "audio file missing"
        if key not in audio:
            return "no audio (not in wav.scp)" if segs is None else "no audio (recording not in wav.scp)"
        return "not in every table"

    used_recos = {segs[u].reco for u in keep} if segs is not None else None
    return keep, reason_for, used_recos


def _new_backup_dir(d: Path) -> Path:
    """``d/.backup`` for the first fix, ``.backup.1``, ``.backup.2``, ... for later ones (never reused)."""
    backup, n = d / ".backup", 0
    while backup.exists():
        n += 1
        backup = d / f".backup.{n}"
    backup.mkdir()
    return backup


# ----------------------------------------------------------------------------- subsetting


def copy_subset(src: str | os.PathLike, dst: str | os.PathLike, utts: Iterable[str]) -> int:
    """Copy ``src`` to ``dst`` keeping only ``utts`` (and the recordings they use)."""
    s, t = Path(src), Path(dst)
    keep = set(utts)
    t.mkdir(parents=True, exist_ok=True)
    seg_path = s / "segments"
    recos = None
    if seg_path.is_file():
        recos = {x.reco for k, x in read_segments(read_table(seg_path)).items() if k in keep}
    drop_stale_tables(t, {name for name in ALL_TABLES if (s / name).is_file()}, "subset")
    for name in ALL_TABLES:
        if not (s / name).is_file():
            continue
        table = read_table(s / name, allow_empty_value=True)
        by = recos if (name in RECO_TABLES and recos is not None) else keep
        write_table(t / name, [(k, v) for k, v in table.items if k in by])
    write_table(t / "spk2utt", utt2spk_to_spk2utt(read_table(t / "utt2spk").items))
    return len(keep)


def _entry_seconds(job: tuple[str, str]) -> tuple[str, float]:
    return job[0], entry_seconds(*job)


def compute_utt2dur(data_dir: str | os.PathLike, nj: int = 1) -> dict[str, float]:
    """Every utterance's duration in seconds: ``segments`` end - start, else the audio file's
    header (no decoding; pipes and ark entries are read), in ``nj`` processes. Written to
    ``utt2dur`` (atomically) by :func:`write_utt2dur`."""
    from tqdm import tqdm

    d = Path(data_dir)
    utts = read_table(d / "utt2spk").keys()
    if (d / "segments").is_file():
        seg = read_segments(read_table(d / "segments"))
        missing = [u for u in utts if u not in seg]
        if missing:
            raise DataDirError(f"{d / 'segments'}: no line for utterance '{missing[0]}' of utt2spk")
        return {u: seg[u].seconds for u in utts}
    wav = read_table(d / "wav.scp").as_dict()
    missing = [u for u in utts if u not in wav]
    if missing:
        raise DataDirError(f"{d / 'wav.scp'}: no line for utterance '{missing[0]}' of utt2spk ({len(missing)} missing)")
    jobs = [(u, wav[u]) for u in utts]
    bar = dict(total=len(jobs), desc=f"durations of {d.name}", unit="utt", mininterval=5)
    if nj > 1 and len(jobs) >= 200:
        from multiprocessing import get_context

        with get_context("spawn").Pool(nj) as pool:
            pairs = list(tqdm(pool.imap(_entry_seconds, jobs, chunksize=256), **bar))
    else:
        pairs = [_entry_seconds(j) for j in tqdm(jobs, **bar)]
    return dict(pairs)


def write_utt2dur(data_dir: str | os.PathLike, nj: int = 1) -> dict[str, float]:
    """Compute (:func:`compute_utt2dur`) and write ``DIR/utt2dur``; returns the durations."""
    durs = compute_utt2dur(data_dir, nj)
    write_table(Path(data_dir) / "utt2dur", [(k, f"{v:.4f}") for k, v in durs.items()])
    return durs


def utt_durations(data_dir: str | os.PathLike, write: bool = True) -> dict[str, float]:
    """Utterance durations in seconds: from ``utt2dur`` (the data stage writes it: recipe stage 1,
    ``utils/data/get_utt2dur.sh``), else from ``segments``. A dir with neither gets its
    ``utt2dur`` computed from the audio headers here (and written there when ``write``; a tool that
    only reads the dir, as a subset, passes False), by one process only: under torchrun
    (``WORLD_SIZE`` > 1) that is an error, since every rank would do it and race to write it."""
    d = Path(data_dir)
    if (d / "utt2dur").is_file():
        return {k: float(v) for k, v in read_table(d / "utt2dur").items}
    if (d / "segments").is_file():
        return compute_utt2dur(d)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DataDirError(f"{d}: no utt2dur; compute it once before a multi-process run: "
                           f"utils/data/get_utt2dur.sh --nj 8 {d} (recipe stage 1 does)")
    if not write:
        logger.info("%s: no utt2dur; reading the durations from the audio headers", d)
        return compute_utt2dur(d)
    logger.warning("%s: no utt2dur; computing it from the audio headers (utils/data/get_utt2dur.sh does this once)", d)
    return write_utt2dur(d)


def combine_data_dirs(dst: str | os.PathLike, srcs: Iterable[str | os.PathLike]) -> int:
    """Concatenate data dirs into ``dst``; ids must be unique across the sources."""
    t = Path(dst)
    srcs = [Path(s) for s in srcs]
    if any(same_dir(t, s) for s in srcs):
        raise DataDirError(f"combine: the destination {t} is also a source; write the combination to another dir")
    merged: dict[str, list[tuple[str, str]]] = {}
    origin: dict[tuple[str, str], Path] = {}
    for name in ALL_TABLES:
        present = [s for s in srcs if (s / name).is_file()]
        if not present:
            continue
        if len(present) != len(srcs):
            missing = [str(s) for s in srcs if s not in present]
            if name in ("wav.scp", "utt2spk", "text"):
                raise DataDirError(f"combine: {name} is missing in {missing}")
            logger.warning("combine: %s missing in %s; not writing it", name, missing)
            continue
        items = []
        for s in present:
            for k, v in read_table(s / name, allow_empty_value=True).items:
                if (name, k) in origin:
                    raise DataDirError(f"combine: id '{k}' of {name} is in both {origin[(name, k)]} and {s}")
                origin[(name, k)] = s
                items.append((k, v))
        merged[name] = items
    t.mkdir(parents=True, exist_ok=True)
    drop_stale_tables(t, set(merged), "combine")
    for name, items in merged.items():
        write_table(t / name, items)
    write_table(t / "spk2utt", utt2spk_to_spk2utt(merged["utt2spk"]))
    return len(merged["utt2spk"])


def split_scp(
    scp: str | os.PathLike,
    outputs: list[str | os.PathLike],
    utt2spk: str | os.PathLike | None = None,
) -> None:
    """Split an scp-like file into ``len(outputs)`` contiguous, near-equal parts.

    With ``utt2spk``, all utterances of a speaker go to the same part.
    """
    table = read_table(scp, allow_empty_value=True)
    n = len(outputs)
    if n < 1:
        raise ValueError("split_scp: need at least one output")
    if utt2spk is None:
        groups = [[kv] for kv in table.items]
    else:
        u2s = read_table(utt2spk).as_dict()
        groups_d: dict[str, list] = {}
        for k, v in table.items:
            if k not in u2s:
                raise DataDirError(f"{scp}: utterance '{k}' is not in {utt2spk}")
            groups_d.setdefault(u2s[k], []).append((k, v))
        groups = list(groups_d.values())
    if len(groups) < n:
        raise DataDirError(f"{scp}: cannot split {len(groups)} {'speakers' if utt2spk else 'lines'} into {n} parts")
    total = sum(len(g) for g in groups)
    parts: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    done = 0
    gi = 0
    for i in range(n):
        target = round(total * (i + 1) / n)
        # each remaining part needs at least one group
        while gi < len(groups) and (done < target or not parts[i]) and len(groups) - gi > n - i - 1:
            parts[i].extend(groups[gi])
            done += len(groups[gi])
            gi += 1
    parts[-1].extend(kv for g in groups[gi:] for kv in g)
    for out, items in zip(outputs, parts):
        write_table(out, items, sort=False)
