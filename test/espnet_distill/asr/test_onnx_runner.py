"""The torch-free runner of exported folders: tokens.txt, CTC greedy search, resampling, errors
(the runtimes themselves: test_onnx_export.py)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

from espnet_distill.asr import onnx_runner


def test_it_imports_nothing_but_numpy_soundfile_and_a_runtime():
    tree = ast.parse(Path(onnx_runner.__file__).read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    third_party = names - set(sys.stdlib_module_names)
    assert third_party == {"numpy", "soundfile", "sherpa_onnx", "onnxruntime"}


def test_tokens_txt_and_its_errors(tmp_path):
    (tmp_path / "t.txt").write_text("<blank> 0\n\u2581 2\na 1\n")
    assert onnx_runner.read_tokens(tmp_path / "t.txt") == ["<blank>", "a", "\u2581"]
    (tmp_path / "bad.txt").write_text("<blank> 0\na\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'token id', got 'a'"):
        onnx_runner.read_tokens(tmp_path / "bad.txt")
    (tmp_path / "gap.txt").write_text("<blank> 0\na 2\n")
    with pytest.raises(ValueError, match=r"gap.txt: ids are not 0..1"):
        onnx_runner.read_tokens(tmp_path / "gap.txt")
    assert onnx_runner.tokens_to_text(["\u2581he", "llo", "\u2581", "w"]) == "hello w"


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    log_probs = np.log(np.eye(4)[path] * 0.9 + 0.025)
    assert onnx_runner.ctc_greedy(log_probs, len(path), blank=0) == [1, 1, 2, 3]
    assert onnx_runner.ctc_greedy(log_probs, 5, blank=0) == [1, 1, 2]  # frames past n are padding


def test_resampling_keeps_a_tone_and_the_duration():
    t = np.arange(8000) / 8000
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = onnx_runner.resample(x, 8000)
    assert len(y) == 16000
    ref = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y[200:-200] - ref[200:-200]).max() < 1e-3
    assert onnx_runner.resample(x, 16000) is x


def test_a_folder_that_is_not_an_export_is_one_line(tmp_path, capsys):
    assert onnx_runner.main([str(tmp_path / "a.wav")], folder=str(tmp_path)) == 2
    assert "no export.json: not a folder of bin/export --to sherpa-onnx" in capsys.readouterr().err


def test_peak_memory_is_the_runners_own():
    """A runner started by a large process reports its own peak, not its parent's (getrusage's
    ru_maxrss survives fork and exec on Linux)."""
    import subprocess
    import sys

    import torch  # noqa: F401  (this process holds torch: hundreds of MB)

    parent = onnx_runner.peak_rss_mb()
    child = subprocess.run([sys.executable, "-c", "from espnet_distill.asr import onnx_runner as r; "
                            "print(r.peak_rss_mb())"], capture_output=True, text=True, check=True).stdout
    assert 0 < float(child) < min(150.0, parent)
