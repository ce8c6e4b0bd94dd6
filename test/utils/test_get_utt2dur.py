"""utils/data/get_utt2dur.sh: durations from file headers (any rate, flac), pipes and segments,
in several processes; Kaldi's signature."""
from __future__ import annotations

import subprocess

import pytest
import soundfile as sf
from helpers import ROOT, segmented_dir, tone, write_wav

SCRIPT = ROOT / "utils/data/get_utt2dur.sh"


def read(path):
    return {k: float(v) for k, v in (line.split() for line in path.read_text().splitlines())}


@pytest.mark.slow
def test_headers_pipes_and_many_files_in_parallel(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    wav, u2s = [], []
    for i in range(240):  # enough for the process pool
        utt = f"s{i % 3}-{i:04d}"
        if i % 2:
            path = tmp_path / "audio" / f"{utt}.flac"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, tone(0.2 + i / 1000, 8000), 8000, format="FLAC")
            wav.append(f"{utt} {path}\n")
        else:
            path = write_wav(tmp_path / "audio" / f"{utt}.wav", 0.2 + i / 1000)
            wav.append(f"{utt} cat {path} |\n" if i % 4 == 0 else f"{utt} {path}\n")
        u2s.append(f"{utt} s{i % 3}\n")
    (d / "wav.scp").write_text("".join(sorted(wav)))
    (d / "utt2spk").write_text("".join(sorted(u2s)))
    r = subprocess.run([str(SCRIPT), "--nj", "2", "--cmd", "run.pl", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    durs = read(d / "utt2dur")
    assert len(durs) == 240
    for utt, dur in durs.items():
        assert dur == pytest.approx(0.2 + int(utt.split("-")[1]) / 1000, abs=2e-4), utt


@pytest.mark.slow
def test_segments_and_errors_name_the_utterance(tmp_path):
    d = segmented_dir(tmp_path, {"u1": (0.0, 1.25), "u2": (1.25, 3.0)})
    assert subprocess.run([str(SCRIPT), str(d)], capture_output=True).returncode == 0
    assert read(d / "utt2dur") == {"u1": 1.25, "u2": 1.75}
    e = tmp_path / "bad"
    e.mkdir()
    (e / "wav.scp").write_text(f"u1 {tmp_path}/missing.wav\n")
    (e / "utt2spk").write_text("u1 s\n")
    r = subprocess.run([str(SCRIPT), str(e)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "utterance 'u1'" in r.stderr
    assert "missing.wav" in r.stderr
    assert not (e / "utt2dur").exists()
