"""Kaldi tables: errors that name the file and line, atomic sorted writes, a job's shard of keys."""
from __future__ import annotations

import os
import stat

import pytest

from espnet_distill.data.tables import DataDirError, read_table, shard_utts, table_lines, write_table


def test_shards_cover_every_utterance_once():
    utts = [f"u{i}" for i in range(11)]
    parts = [shard_utts(utts, j, 4) for j in range(1, 5)]
    assert sum(parts, []) == utts
    assert {len(p) for p in parts} <= {2, 3}
    with pytest.raises(ValueError, match="shard 5 is not in 1..4"):
        shard_utts(utts, 5, 4)


def test_tables_are_written_sorted_in_place_and_read_with_their_lines(tmp_path):
    path = tmp_path / "text"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    write_table(path, [("b", "two words"), ("a", "one"), ("B", "upper")])
    assert path.read_text() == "B upper\na one\nb two words\n"  # byte order, as LC_ALL=C sort
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".*tmp"))
    t = read_table(path)
    assert t.keys() == ["B", "a", "b"]
    assert table_lines(t)["b"] == f"{path}:3"
    path.write_text("a 1\nb 2\na 3\n")
    with pytest.raises(DataDirError, match=r"text:3: duplicate id 'a' \(first on line 1\)"):
        read_table(path)
