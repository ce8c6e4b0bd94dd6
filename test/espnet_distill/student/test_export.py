"""Exports that leave the toolkit (transformers, ONNX Runtime, s3prl, int8) compute what our student
computes, on real speech, and refuse what they cannot express."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FSDD_RECORDINGS

from espnet_distill.bin import export as export_cli
from espnet_distill.data.audio import load_audio_file
from espnet_distill.student.export import (
    ExportError,
    export_hf,
    export_onnx,
    quantize_int8,
    quantize_onnx_int8,
    save_student,
)
from espnet_distill.student.model import Student, StudentConfig

CONV = [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]]
FSDD = FSDD_RECORDINGS


def student(frontend: str = "cnn", dim: int = 48, **kw) -> Student:
    """A small student whose every weight (norms included) is random, in eval mode."""
    fe = {"conv_layers": CONV, "layer_norm": kw.pop("fe_layer_norm", False),
          "extractor_mode": kw.pop("extractor_mode", "default")} if frontend == "cnn" else {"num_mel_bins": 40}
    cfg = StudentConfig(frontend=frontend, frontend_conf=fe, dim=dim, ffn_dim=2 * dim, num_layers=2, num_heads=4,
                        conv_pos=kw.pop("conv_pos", 16), conv_pos_groups=4, teacher_dim=64, teacher_layers=2,
                        num_classes=10, codebook_dim=16, **kw)
    torch.manual_seed(0)
    s = Student(cfg)
    with torch.no_grad():
        for p in s.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if frontend == "fbank":
            s.frontend.set_cmvn(torch.full((40,), 8.0), torch.full((40,), 3.0))
    return s.eval()


def speech(*names: str) -> list[torch.Tensor]:
    """FSDD recordings (8 kHz) as 16 kHz waveforms."""
    return [torch.from_numpy(load_audio_file(FSDD / n)) for n in names]


def padded(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in wavs])
    batch = torch.zeros(len(wavs), int(lengths.max()))
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = w
    return batch, lengths


@pytest.mark.parametrize("variant", [
    {},                                                     # DistilHuBERT-like: post-LN, no front-end LN
    {"fe_layer_norm": True},                                # HuBERT's LayerNorm after the CNN
    {"extractor_mode": "layer_norm", "layer_norm_first": True},  # pre-LN (HuBERT Large-style)
    {"dim": 32, "conv_pos": 15},                            # no projection (C == D), odd positional kernel
])
def test_hf_export_gives_our_hidden_states_on_speech(tmp_path, variant):
    from transformers import HubertModel

    s = student(**variant)
    export_hf(s, tmp_path / "hf")
    assert {"config.json", "model.safetensors",
            "preprocessor_config.json"} <= {p.name for p in (tmp_path / "hf").iterdir()}
    hf = HubertModel.from_pretrained(tmp_path / "hf").eval()
    for wav in speech("0_george_0.wav", "7_jackson_3.wav"):
        with torch.no_grad():
            ours, _ = s.encode(wav[None], torch.tensor([len(wav)]))
            out = hf(wav[None], output_hidden_states=True)
        theirs = list(out.hidden_states)
        assert len(theirs) == len(ours) == 3
        if s.cfg.layer_norm_first:  # transformers reports the last layer before the final LayerNorm
            theirs[-1] = out.last_hidden_state
        torch.testing.assert_close(out.last_hidden_state, ours[-1], atol=1e-4, rtol=0)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=0)


def test_hf_export_refuses_fbank_students(tmp_path):
    with pytest.raises(ExportError, match="front-end is 'fbank' \\(export it to ONNX instead\\)"):
        export_hf(student("fbank"), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("frontend", ["cnn", "fbank"])
def test_onnx_export_matches_pytorch_at_other_batch_sizes_and_lengths(tmp_path, frontend):
    import onnxruntime

    s = student(frontend)
    path = export_onnx(s, tmp_path / "s.onnx")
    assert not s.training  # the export leaves the student as it found it
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # traced on a batch of two one-second signals: here one and three utterances of other lengths
    for wavs in (speech("3_theo_2.wav"), speech("0_george_0.wav", "5_yweweler_0.wav", "9_nicolas_0.wav")):
        wav, lengths = padded(wavs)
        with torch.no_grad():
            ours, mask = s.encode(wav, lengths)
        hidden, frames = sess.run(None, {"wav": wav.numpy(), "lengths": lengths.numpy()})
        np.testing.assert_array_equal(frames, mask.sum(1).numpy())
        assert hidden.shape == (3, len(wavs), mask.shape[1], s.cfg.dim)
        for a, b in zip(ours, hidden):
            assert float((a - torch.from_numpy(b)).abs()[mask].max()) < 1e-4


def test_onnx_int8_quantizes_the_encoder_only(tmp_path):
    import onnx
    import onnxruntime

    s = student("fbank", dim=128)
    fp32 = export_onnx(s, tmp_path / "s.onnx")
    int8 = quantize_onnx_int8(fp32, tmp_path / "s.int8.onnx")
    nodes = onnx.load(str(int8)).graph.node
    quantized = [n.name for n in nodes if n.op_type == "MatMulInteger"]
    assert quantized
    assert not any("/frontend/" in n for n in quantized)  # the fbank's DFT and mel stay float
    assert int8.stat().st_size < fp32.stat().st_size
    wav, lengths = padded(speech("0_george_0.wav"))
    with torch.no_grad():
        ours, _ = s.encode(wav, lengths)
    hidden, _ = onnxruntime.InferenceSession(str(int8)).run(None, {"wav": wav.numpy(), "lengths": lengths.numpy()})
    rel = float((ours[-1] - torch.from_numpy(hidden[-1])).norm() / ours[-1].norm())
    assert 0 < rel < 0.05


def test_pytorch_int8_replaces_linear_layers_and_stays_close():
    s = student("fbank", dim=128)
    q = quantize_int8(s)
    assert not any(type(m) is torch.nn.Linear for m in q.encoder.modules())
    assert any(type(m) is torch.nn.Linear for m in s.encoder.modules())  # a copy: the student is untouched
    wav, lengths = padded(speech("0_george_0.wav"))
    with torch.no_grad():
        a, _ = s.encode(wav, lengths)
        b, _ = q.encode(wav, lengths)
    rel = float((a[-1] - b[-1]).norm() / a[-1].norm())
    assert 0 < rel < 0.05


def test_export_command(tmp_path, capsys):
    cnn, fb = tmp_path / "cnn.pt", tmp_path / "fb.pt"
    save_student(cnn, student())
    save_student(fb, student("fbank"))
    audio = ["--check-audio", str(FSDD / "0_george_0.wav"), "--check-audio", str(FSDD / "1_theo_3.wav")]
    for to, out in [("hf", tmp_path / "hf"), ("onnx", tmp_path / "c.onnx"), ("s3prl", tmp_path / "c.s3prl.pt")]:
        assert export_cli.main(["--to", to, *audio, str(cnn), str(out)]) == 0
        line = capsys.readouterr().out
        assert f"{out}: {to}" in line
        assert "largest difference from the PyTorch student" in line
        assert float(line.rsplit(" ", 1)[1]) < 1e-4
    assert export_cli.main(["--to", "onnx", "--quantize", "int8", "--json", str(tmp_path / "r.json"), str(fb),
                            str(tmp_path / "f.int8.onnx")]) == 0
    assert (tmp_path / "f.int8.onnx").is_file()
    assert '"quantize": "int8"' in (tmp_path / "r.json").read_text()
    # what cannot be expressed: refused with the reason, nothing written
    assert export_cli.main(["--to", "hf", str(fb), str(tmp_path / "fb_hf")]) == 2
    assert "front-end is 'fbank'" in capsys.readouterr().err
    assert not (tmp_path / "fb_hf").exists()
    assert export_cli.main(["--to", "s3prl", str(fb), str(tmp_path / "fb.s3prl.pt")]) == 2
    assert "waveform-CNN students only" in capsys.readouterr().err
    assert export_cli.main(["--to", "hf", "--quantize", "int8", str(cnn), str(tmp_path / "q")]) == 2
    assert "--quantize int8 is for --to onnx" in capsys.readouterr().err
    assert export_cli.main(["--to", "onnx", str(tmp_path / "missing.pt"), str(tmp_path / "m.onnx")]) == 2


def test_export_never_overwrites_its_input_and_asks_before_replacing(tmp_path, capsys):
    cnn = tmp_path / "s.pt"
    save_student(cnn, student())
    before = cnn.read_bytes()
    for to in ("s3prl", "onnx"):  # OUT = the student itself
        assert export_cli.main(["--to", to, str(cnn), str(cnn)]) == 2
        assert "would overwrite the input" in capsys.readouterr().err
        assert cnn.read_bytes() == before
    assert export_cli.main(["--to", "hf", str(cnn), str(tmp_path)]) == 2  # a folder holding the input
    assert "would overwrite the input" in capsys.readouterr().err
    for to, out in (("s3prl", tmp_path / "o.pt"), ("onnx", tmp_path / "o.onnx"), ("hf", tmp_path / "hf")):
        assert export_cli.main(["--to", to, str(cnn), str(out)]) == 0
        capsys.readouterr()
        stamp = out.stat().st_mtime_ns
        assert export_cli.main(["--to", to, str(cnn), str(out)]) == 2  # the same rule for every target
        assert "exists; pass --overwrite" in capsys.readouterr().err
        assert out.stat().st_mtime_ns == stamp
        assert export_cli.main(["--to", to, "--overwrite", str(cnn), str(out)]) == 0
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "hf").iterdir()}
    assert len(set(modes.values())) == 1, modes  # model.safetensors like the others
