"""Fine-tuned CTC models to sherpa-onnx / ONNX Runtime folders: the graphs equal PyTorch, sherpa-onnx
decodes the Fbank kind as PyTorch does, and the folder runs in a venv without torch."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FSDD_RECORDINGS, tiny_student_conf, tiny_teacher

from espnet_distill.analysis.onnx_bench import random_experiment
from espnet_distill.asr import onnx_runner
from espnet_distill.asr.onnx_export import export_asr, torch_log_probs
from espnet_distill.asr.score import Counts, align_counts
from espnet_distill.asr.task import load_model
from espnet_distill.bin import export as export_bin
from espnet_distill.bin import transcribe as transcribe_bin
from espnet_distill.student.export import ExportError, save_student
from espnet_distill.train.distill import build_student

TOKENS = ["<blank>", "<unk>", "<space>", *"abcdefgh", "<sos/eos>"]


def fine_tuned_experiment(root: Path, frontend: str) -> Path:
    """``root/exp``: an ESPnet CTC experiment folder of a tiny student of ``frontend``, random weights,
    the CTC head scaled up so that its greedy paths are clear (float rounding does not flip them)."""
    torch.manual_seed(0)
    student, _ = build_student(tiny_student_conf(frontend), tiny_teacher())
    if frontend == "fbank":
        student.frontend.set_cmvn(torch.randn(80) * 0.5 + 5, torch.rand(80) + 1.0)
    root.mkdir(parents=True)
    save_student(root / "student.pt", student)
    return random_experiment(root / "student.pt", root, TOKENS, head_scale=40)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{kind: (experiment, exported folder)} for an Fbank and a CNN student."""
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for kind, frontend in (("fbank", "fbank"), ("waveform", "cnn")):
        exp = fine_tuned_experiment(root / kind, frontend)
        export_asr(exp, root / kind / "onnx")
        out[kind] = (exp, root / kind / "onnx")
    return out


def speech(n: int = 12) -> list[np.ndarray]:
    """FSDD recordings with a -60 dB noise floor: FSDD is 8 kHz, and the log-mel of an empty band
    is float rounding, which differs between FFT implementations (the model card says so)."""
    rng = np.random.default_rng(0)
    wavs = [onnx_runner.read_audio(str(p)) for p in sorted(FSDD_RECORDINGS.glob("*.wav"))[:n]]
    return [w + 1e-3 * rng.standard_normal(len(w)).astype(np.float32) for w in wavs]


def torch_texts(exp: Path, wavs: list[np.ndarray]) -> list[str]:
    model, _ = load_model(exp / "config.yaml", exp / "valid.loss.ave.pth")
    tokens = onnx_runner.read_tokens(exp.parent / "onnx" / "tokens.txt")
    texts = []
    for w in wavs:
        lp = torch_log_probs(model, torch.from_numpy(w))
        texts.append(onnx_runner.tokens_to_text([tokens[i] for i in onnx_runner.ctc_greedy(lp, len(lp), 0)]))
    return texts


@pytest.mark.parametrize("kind", ["fbank", "waveform"])
def test_the_folder_decodes_as_pytorch_does(exported, kind):
    exp, out = exported[kind]
    info = json.loads((out / "export.json").read_text())
    assert info["kind"] == kind
    assert info["check"]["model.onnx"]["max_abs_diff"] < 1e-3
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "export.json", "model.int8.onnx", "model.onnx",
                                                     "tokens.txt", "transcribe.py"]
    assert (out / "tokens.txt").read_text().splitlines()[:3] == ["<blank> 0", "<unk> 1", "\u2581 2"]
    wavs = speech(24)
    ref = torch_texts(exp, wavs)
    rec = onnx_runner.Recognizer(out)
    assert rec.runtime.__module__ == onnx_runner.__name__
    got = [rec(w) for w in wavs]
    if kind == "waveform":  # the features are in the graph: the same greedy paths
        assert got == ref
    else:
        # sherpa-onnx computes its own fbank (kaldi-native-fbank), which rounds differently from
        # ours, and how differently depends on the CPU's FFT path: on a random model a near tie may
        # flip a character. Features that were wrong flip many: the input shifted by 5 ms alone
        # gives a CER of about 40 % against the PyTorch texts.
        errors = Counts()
        for hyp, truth in zip(got, ref):
            errors = errors.add(align_counts(list(truth), list(hyp)))
        assert errors.rate() < 5.0, (errors.kaldi_line("CER"), got, ref)
    assert sum(map(len, ref)) > 2 * len(ref)  # not all empty: the comparison says something
    assert "sherpa-onnx" in info["runtime"] if kind == "fbank" else info["runtime"] == "onnxruntime"


def test_sherpa_onnx_reads_the_wenet_metadata(exported):
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(exported["fbank"][1] / "model.onnx")).metadata_props}
    assert meta["model_type"] == "wenet_ctc"
    assert meta["vocab_size"] == str(len(TOKENS))
    assert meta["subsampling_factor"] == "2"


def test_bad_outputs_are_refused_and_nothing_is_written(exported, tmp_path, capsys):
    exp, out = exported["waveform"]
    for target, why in ((exp / "onnx", "inside the experiment folder"), (out, "exists; remove it or pass --overwrite")):
        with pytest.raises(ExportError, match=why):
            export_asr(exp, target)
    assert not (exp / "onnx").exists()
    assert export_bin.main(["--to", "sherpa-onnx", str(exp), str(tmp_path / "o"), "--atol", "0"]) == 2
    assert "differs from PyTorch by" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert not list(tmp_path.glob(".o.partial"))


def test_transcribe_takes_the_folder(exported, tmp_path, capsys):
    import soundfile as sf

    exp, out = exported["fbank"]
    wav = speech(1)[0]
    sf.write(tmp_path / "a.wav", wav, 16000, subtype="FLOAT")
    (tmp_path / "empty.wav").write_bytes(b"")
    assert transcribe_bin.main(["--model", str(out), "--json", str(tmp_path / "a.wav"),
                                str(tmp_path / "empty.wav")]) == 1
    captured = capsys.readouterr()
    row = json.loads(captured.out.splitlines()[0])
    assert row["text"] == torch_texts(exp, [wav])[0]
    assert row["runtime"] == "sherpa-onnx (WeNet CTC)"
    assert "empty.wav: not readable as audio" in captured.err


def _site_packages_of(dists: list[str], site: Path) -> None:
    """Link each distribution (and what it requires) into ``site``, as pip would have installed it."""
    from packaging.requirements import Requirement

    seen, todo = set(), list(dists)
    while todo:
        dist = metadata.distribution(todo.pop())
        if dist.name.lower() in seen:
            continue
        seen.add(dist.name.lower())
        for req in map(Requirement, dist.requires or []):
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
        for top in {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__", "bin")}:
            src = Path(dist.locate_file(top))
            if src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)


@pytest.mark.slow  # two fresh interpreters
@pytest.mark.parametrize("kind,runtime", [("fbank", "sherpa-onnx"), ("waveform", "onnxruntime")])
def test_the_folder_runs_where_only_its_runtime_is_installed(exported, tmp_path, kind, runtime):
    """A venv holding only ``runtime soundfile numpy`` (and what they require): the folder's own
    transcribe.py gives PyTorch's text there, and torch is not importable."""
    import soundfile as sf

    exp, out = exported[kind]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    site = next((tmp_path / "venv/lib").glob("python3*/site-packages"))
    _site_packages_of([runtime, "soundfile", "numpy"], site)
    python = tmp_path / "venv/bin/python"
    for module in ("torch", "espnet", "espnet_distill"):
        r = subprocess.run([str(python), "-c", f"import {module}"], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode != 0, module
    wavs = speech(3)
    for i, w in enumerate(wavs):
        sf.write(tmp_path / f"{i}.flac", w, 16000)
    files = [str(tmp_path / f"{i}.flac") for i in range(len(wavs))]
    r = subprocess.run([str(python), str(out / "transcribe.py"), "--json", *files], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    texts = [json.loads(line)["text"] for line in r.stdout.splitlines()]
    flac = [onnx_runner.read_audio(f) for f in files]
    assert texts == torch_texts(exp, flac)


@pytest.mark.slow  # ESPnet's packer in a process of its own
def test_a_pack_carries_the_export(exported, tmp_path, capsys):
    """pack_model --onnx puts the exported folder into the archive; transcribe --runtime onnx runs it,
    the default runtime still the torch model of the same archive."""
    import soundfile as sf

    from espnet_distill.bin import pack_model

    exp, out = exported["waveform"]
    assert pack_model.main(["--exp", str(exp), "--out", str(tmp_path / "m.zip"), "--onnx", str(out)]) == 0
    assert pack_model.main(["--exp", str(exp), "--out", str(tmp_path / "x.zip"), "--onnx", str(tmp_path)]) == 1
    wav = speech(1)[0]
    sf.write(tmp_path / "a.wav", wav, 16000, subtype="FLOAT")
    capsys.readouterr()
    common = ["--model", str(tmp_path / "m.zip"), "--json", str(tmp_path / "a.wav")]
    assert transcribe_bin.main([*common, "--runtime", "onnx"]) == 0
    assert transcribe_bin.main([*common, "--decoding", "ctc"]) == 0  # the torch model, as before
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["runtime"] == "onnxruntime"
    assert rows[0]["text"] == rows[1]["text"] == torch_texts(exp, [wav])[0]


def test_a_superb_probe_is_refused_with_the_reason():
    from types import SimpleNamespace

    from espnet_distill.asr.onnx_export import kind_of
    from espnet_distill.student.export import ExportError

    probe = SimpleNamespace(frontend=SimpleNamespace(upstream=object()), preencoder=torch.nn.Linear(4, 4),
                            encoder=torch.nn.LSTM(4, 4))
    with pytest.raises(ExportError, match="SUPERB-protocol probe.*passthrough"):
        kind_of(probe)
