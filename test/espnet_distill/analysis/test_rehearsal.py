from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from espnet_distill.analysis.rehearsal import librispeech_like_durations


def test_durations_are_shaped_like_librispeech():
    d = librispeech_like_durations(281_241)
    assert abs(d.mean() - 12.3) < 0.1
    assert d.min() >= 1.0
    assert d.max() <= 35.0
    assert np.array_equal(d, librispeech_like_durations(281_241))  # deterministic


@pytest.mark.slow
def test_rehearsal_runs_and_reports(tmp_path):
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.scale_rehearsal", "--workdir", str(tmp_path / "w"),
                        "--utts", "3000", "--steps", "4", "--batch-seconds", "20", "--workers", "1",
                        "--loader-utts", "100", "--recordings", "2"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "w/rehearsal.json").read_text())
    assert res["utterances"] == 3000
    assert res["updates"] == 4
    assert res["loader_utts"] >= 100
    assert 0 < res["startup_s"] < 600
    assert res["peak_pss_mb"] > 100
    assert res["updates_per_s"] > 0
    segs = (tmp_path / "w/data/train/segments").read_text().splitlines()
    assert len(segs) == 3000
    assert len((tmp_path / "w/data/train/utt2dur").read_text().splitlines()) == 3000
    for line in segs[:50]:
        _, _, a, b = line.split()
        assert 0 <= float(a) < float(b) <= 40.0
    assert "startup_s" in r.stdout
