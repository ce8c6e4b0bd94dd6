"""Subsets of a data dir: each selector, one meaning; the source only read; bad requests named."""
from __future__ import annotations

import pytest
from helpers import make_data_dir, segmented_dir, write_wav

from espnet_distill.data.kaldi_dir import compute_utt2dur, fix_data_dir, validate_data_dir
from espnet_distill.data.subset import SELECTORS, subset_data_dir
from espnet_distill.data.tables import DataDirError, read_table


def kept(d) -> list[str]:
    return read_table(d / "utt2spk").keys()


@pytest.fixture
def six(tmp_path):
    """Six utterances of three speakers; durations 0.3, 0.4, ... 0.8 s in sorted order."""
    return make_data_dir(tmp_path, {f"s{i // 2}-{i}": (f"s{i // 2}", "x") for i in range(6)}, name="six")


@pytest.mark.parametrize("how, value, want", [
    ("evenly", 3, ["s0-0", "s1-2", "s2-4"]),
    ("first", 2, ["s0-0", "s0-1"]),
    ("last", 2, ["s2-4", "s2-5"]),
    ("shortest", 2, ["s0-0", "s0-1"]),
    ("per-spk", 1, ["s0-0", "s1-2", "s2-4"]),
    ("whole-speakers", 3, ["s0-0", "s0-1", "s1-2", "s1-3"]),
    ("speakers", "s1,s2", ["s1-2", "s1-3", "s2-4", "s2-5"]),
])
def test_each_selector(six, tmp_path, how, value, want):
    assert subset_data_dir(six, tmp_path / how, how, value) == len(want)
    assert kept(tmp_path / how) == want
    validate_data_dir(tmp_path / how)


def test_random_and_seconds_follow_the_seed_and_leave_the_source_as_it_was(six, tmp_path):
    before = sorted(p.name for p in six.iterdir())
    subset_data_dir(six, tmp_path / "r1", "random", 3, seed=3)
    subset_data_dir(six, tmp_path / "r2", "random", 3, seed=3)
    assert kept(tmp_path / "r1") == kept(tmp_path / "r2")
    assert len(kept(tmp_path / "r1")) == 3
    n = subset_data_dir(six, tmp_path / "dur", "seconds", 1.0, seed=0)
    durs = compute_utt2dur(six)
    assert sum(durs[k] for k in kept(tmp_path / "dur")) >= 1.0
    assert n < 6
    assert sorted(p.name for p in six.iterdir()) == before  # no utt2dur written into it


def test_lists(six, tmp_path):
    (tmp_path / "ulist").write_text("s2-5 extra fields\ns0-0\nnobody\n")
    (tmp_path / "slist").write_text("s1\n")
    subset_data_dir(six, tmp_path / "ul", "utt-list", tmp_path / "ulist")
    assert kept(tmp_path / "ul") == ["s0-0", "s2-5"]
    subset_data_dir(six, tmp_path / "sl", "spk-list", tmp_path / "slist")
    assert kept(tmp_path / "sl") == ["s1-2", "s1-3"]
    (tmp_path / "none").write_text("nobody\n")
    with pytest.raises(DataDirError, match="none of its speakers is in"):
        subset_data_dir(six, tmp_path / "x", "spk-list", tmp_path / "none")


@pytest.mark.parametrize("how, value, match", [
    ("first", 7, r"asked for 7 utterances \(first\) but it has only 6"),
    ("evenly", 50, "but it has only 6"),
    ("random", 0, "expected at least 1"),
    ("first", -1, "expected at least 1"),
    ("seconds", -5.0, "expected a positive duration"),
    ("speakers", "nobody", r"unknown speaker\(s\) \['nobody'\]"),
    ("middle", 2, "unknown selector 'middle'"),
])
def test_bad_requests_are_named_and_write_nothing(six, tmp_path, how, value, match):
    with pytest.raises(DataDirError, match=match):
        subset_data_dir(six, tmp_path / "out", how, value)
    assert not (tmp_path / "out").exists()


def test_never_into_its_source(six, tmp_path):
    for dst in (six, tmp_path / "six/../six"):
        with pytest.raises(DataDirError, match="destination .* is the source"):
            subset_data_dir(six, dst, "first", 1)
    assert len(kept(six)) == 6


def test_segments_follow_and_stale_tables_go(tmp_path):
    d = segmented_dir(tmp_path, {"u1": (0.0, 1.0), "u2": (2.0, 1.5)}, texts={"u1": "a", "u2": "b"})
    rec = write_wav(tmp_path / "rec.wav", 3.0)
    dropped = fix_data_dir(d)
    assert (d / "utt2spk").read_text() == "u1 s\n"
    assert any("segment end not after its start" in r for r in dropped["segments"])
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "wav.scp").write_text(f"u9 {rec}\n")
    (plain / "utt2spk").write_text("u9 s\n")
    subset_data_dir(d, tmp_path / "out", "first", 1)
    assert (tmp_path / "out/segments").is_file()
    subset_data_dir(plain, tmp_path / "out", "first", 1)  # the old segments would now be stale
    assert not (tmp_path / "out/segments").exists()


def test_the_registry_is_what_the_docstring_lists():
    import espnet_distill.data.subset as subset

    for name in SELECTORS:
        assert f"\n    {name} " in subset.__doc__, name
