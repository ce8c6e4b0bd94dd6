"""Kaldi data dirs: each bad input gets an error naming the file, line and problem."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import make_data_dir, write_wav

from espnet_distill.data.kaldi_dir import (
    combine_data_dirs,
    fix_data_dir,
    split_scp,
    utt2spk_to_spk2utt,
    validate_data_dir,
)
from espnet_distill.data.tables import DataDirError, read_table


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


def test_valid_dir_passes_and_is_untouched(data_dir):
    before = snapshot(data_dir)
    summary = validate_data_dir(data_dir)
    assert summary["utts"] == 4
    assert summary["spks"] == 2
    assert summary["seconds"] == pytest.approx(0.3 + 0.4 + 0.5 + 0.6, abs=1e-3)
    assert snapshot(data_dir) == before


def test_missing_wav_file_names_utterance(data_dir):
    (data_dir.parent / "wav" / "spkB-001.wav").unlink()
    with pytest.raises(Exception, match=r"utterance 'spkB-001': file not found: .*\[.*wav.scp:3\]"):
        validate_data_dir(data_dir)  # the error points at the wav.scp line
    from espnet_distill.data.audio import AudioError
    from espnet_distill.data.dataset import AudioDataset

    (data_dir / "utt2dur").write_text("spkB-001 0.5\n")  # measured before the file went missing
    with pytest.raises(AudioError, match=r"\[.*wav.scp:3\]"):  # and so does the training reader's
        AudioDataset(data_dir, utts=["spkB-001"])[0]
    (data_dir / "utt2dur").unlink()
    validate_data_dir(data_dir, check_audio=False)  # structure is still fine


def test_truncated_wav(data_dir):
    p = data_dir.parent / "wav" / "spkA-002.wav"
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(Exception, match=r"spkA-002.*truncated"):
        validate_data_dir(data_dir)


def test_corrupt_wav(data_dir):
    p = data_dir.parent / "wav" / "spkA-001.wav"
    p.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(Exception, match=r"utterance 'spkA-001': cannot read audio file"):
        validate_data_dir(data_dir)


def test_empty_transcript(data_dir):
    t = data_dir / "text"
    t.write_text(t.read_text().replace("good morning", "   "))
    with pytest.raises(DataDirError, match=r"text:2: key 'spkA-002' has an empty value"):
        validate_data_dir(data_dir, check_audio=False)


def test_duplicate_ids(data_dir):
    u = data_dir / "utt2spk"
    lines = u.read_text().splitlines(keepends=True)
    u.write_text("".join(lines[:2] + [lines[1]] + lines[2:]))
    with pytest.raises(DataDirError, match=r"utt2spk:3: duplicate id 'spkA-002' \(first on line 2\)"):
        validate_data_dir(data_dir, check_audio=False)


def test_unsorted(data_dir):
    t = data_dir / "text"
    lines = t.read_text().splitlines(keepends=True)
    t.write_text("".join([lines[1], lines[0]] + lines[2:]))
    with pytest.raises(DataDirError, match=r"text:2: not sorted: 'spkA-001' comes after 'spkA-002'"):
        validate_data_dir(data_dir, check_audio=False)


def test_utterance_in_text_not_in_wav_scp(data_dir):
    w = data_dir / "wav.scp"
    w.write_text("".join(x for x in w.read_text().splitlines(keepends=True) if not x.startswith("spkB-002")))
    with pytest.raises(DataDirError, match=r"utt2spk:4: utterance 'spkB-002' is not in .*wav.scp"):
        validate_data_dir(data_dir, check_audio=False)


def test_non_utf8_text(data_dir):
    t = data_dir / "text"
    t.write_bytes(t.read_bytes().replace(b"the cat", b"the \xff\xfecat"))
    with pytest.raises(DataDirError, match=r"text:3: not valid UTF-8"):
        validate_data_dir(data_dir, check_audio=False)


def test_spk2utt_inconsistent(data_dir):
    (data_dir / "spk2utt").write_text("spkA spkA-001\nspkB spkB-001 spkB-002\n")
    with pytest.raises(DataDirError, match=r"spk2utt:1: utterances of speaker 'spkA' disagree"):
        validate_data_dir(data_dir, check_audio=False)


def test_segments_and_reco2dur(tmp_path):
    d = tmp_path / "seg"
    d.mkdir()
    rec = write_wav(tmp_path / "rec1.wav", 2.0)
    (d / "wav.scp").write_text(f"rec1 {rec}\n")
    (d / "segments").write_text("spk1-a rec1 0.00 0.80\nspk1-b rec1 0.80 1.90\n")
    (d / "reco2dur").write_text("rec1 2.0\n")
    (d / "text").write_text("spk1-a one\nspk1-b two\n")
    (d / "utt2spk").write_text("spk1-a spk1\nspk1-b spk1\n")
    (d / "spk2utt").write_text("spk1 spk1-a spk1-b\n")
    s = validate_data_dir(d)
    assert s["seconds"] == pytest.approx(1.9, abs=1e-3)
    (d / "segments").write_text("spk1-a rec1 0.00 0.80\nspk1-b rec1 0.80 2.50\n")
    with pytest.raises(DataDirError,
                       match=r"segments:2: segment 'spk1-b' ends at 2.5 s, after the end of recording 'rec1'"):
        validate_data_dir(d)
    (d / "segments").write_text("spk1-a rec1 0.00 0.80\nspk1-b rec2 0.80 1.50\n")
    with pytest.raises(DataDirError, match=r"segments:2: recording 'rec2' of utterance 'spk1-b' is not in"):
        validate_data_dir(d)


def test_fix_keeps_intersection_and_backup(data_dir):
    t = data_dir / "text"
    original = t.read_bytes()
    t.write_text(t.read_text().replace("good morning", "") + "spkC-001 extra words\n")
    dropped = fix_data_dir(data_dir)
    assert dropped["text"] == {"empty transcript": 1, "not in utt2spk": 1}
    assert dropped["utt2spk"] == {"empty transcript": 1}
    assert read_table(data_dir / "utt2spk").keys() == ["spkA-001", "spkB-001", "spkB-002"]
    assert (data_dir / "spk2utt").read_text() == "spkA spkA-001\nspkB spkB-001 spkB-002\n"
    assert (data_dir / ".backup" / "text").read_bytes() != original  # backup of what was there
    validate_data_dir(data_dir, check_audio=False)


def test_combine_and_duplicate_across_dirs(tmp_path):
    a = make_data_dir(tmp_path / "a", {"s1-1": ("s1", "one"), "s1-2": ("s1", "two")})
    b = make_data_dir(tmp_path / "b", {"s2-1": ("s2", "three")})
    assert combine_data_dirs(tmp_path / "ab", [a, b]) == 3
    validate_data_dir(tmp_path / "ab")
    with pytest.raises(DataDirError, match=r"id 's1-1' of .* is in both"):
        combine_data_dirs(tmp_path / "aa", [a, a])


def test_split_scp_balanced_and_by_speaker(data_dir, tmp_path):
    outs = [tmp_path / f"w.{i}" for i in (1, 2, 3)]
    split_scp(data_dir / "wav.scp", outs)
    sizes = [len(read_table(o).items) for o in outs]
    assert sorted(sizes) == [1, 1, 2]
    assert sum(sizes) == 4
    outs2 = [tmp_path / f"s.{i}" for i in (1, 2)]
    split_scp(data_dir / "wav.scp", outs2, utt2spk=data_dir / "utt2spk")
    assert [read_table(o).keys() for o in outs2] == [["spkA-001", "spkA-002"], ["spkB-001", "spkB-002"]]
    with pytest.raises(DataDirError, match="cannot split 2 speakers into 3 parts"):
        split_scp(data_dir / "wav.scp", outs, utt2spk=data_dir / "utt2spk")


def test_utt2spk_to_spk2utt():
    assert utt2spk_to_spk2utt([("b-2", "b"), ("a-1", "a"), ("b-1", "b")]) == [("a", "a-1"), ("b", "b-1 b-2")]


def test_shell_tools_report_errors(data_dir):
    (data_dir / "text").write_text("spkA-001 hello\nspkA-002 x\nspkB-002 y\nspkB-001 z\n")
    r = subprocess.run(["utils/validate_data_dir.sh", "--no-audio", str(data_dir)], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[3])
    assert r.returncode == 1
    assert "text:4: not sorted: 'spkB-001' comes after 'spkB-002'" in r.stderr
    r = subprocess.run(["utils/validate_data_dir.sh", "--help"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[3])
    assert r.returncode == 0
    assert "--no-audio" in r.stdout


def test_tools_never_overwrite_their_inputs_and_keep_modes(data_dir, tmp_path):
    import os
    import stat

    from espnet_distill.data import kaldi_dir as kd

    os.chmod(data_dir / "text", 0o644)
    with pytest.raises(kd.DataDirError, match="destination .* is also a source"):
        kd.combine_data_dirs(data_dir, [data_dir, tmp_path / "other"])
    assert len((data_dir / "utt2spk").read_text().splitlines()) == 4  # untouched
    kd.fix_data_dir(data_dir)
    assert stat.S_IMODE((data_dir / "text").stat().st_mode) == 0o644  # rewritten, same mode
    original = (data_dir / ".backup/text").read_text()
    (data_dir / "text").write_text("spkA-001 hello world\n")  # a later edit, then a second fix
    kd.fix_data_dir(data_dir)
    assert (data_dir / ".backup/text").read_text() == original  # the first backup survives
    assert (data_dir / ".backup.1/text").read_text() == "spkA-001 hello world\n"


def test_fix_drops_utterances_whose_audio_file_is_missing(data_dir, tmp_path):
    from espnet_distill.data import kaldi_dir as kd

    (tmp_path / "wav" / "spkB-002.wav").unlink()
    dropped = kd.fix_data_dir(data_dir)
    assert "spkB-002" not in (data_dir / "utt2spk").read_text()
    assert dropped["wav.scp"] == {"audio file missing": 1}
    kd.validate_data_dir(data_dir)
