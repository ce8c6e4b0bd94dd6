"""Linear CKA: its invariances, and the analyze command on a teacher and a student."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import make_data_dir

from espnet_distill.analysis.cka import cka_matrix, linear_cka


def test_cka_invariances():
    torch.manual_seed(0)
    x = torch.randn(300, 16)
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0)  # rotation, isotropic scale, offset
    assert linear_cka(x, torch.randn(300, 16)) < 0.15  # unrelated
    assert linear_cka(x, x[:, :8]) == pytest.approx(linear_cka(x[:, :8], x))  # symmetric
    m = cka_matrix([x, x[:, :4]], [x, x @ q, torch.randn(300, 3)])
    assert len(m) == 2
    assert len(m[0]) == 3
    assert m[0][0] == pytest.approx(1)
    assert m[0][1] == pytest.approx(1)
    with pytest.raises(ValueError, match="same frames"):
        linear_cka(x, x[:10])


def test_analyze_teacher_against_student(tmp_path):
    from espnet_distill.nn.hubert import HubertConfig, HubertModel
    from espnet_distill.student.export import save_student
    from espnet_distill.teacher.checkpoints import save_hubert
    from espnet_distill.teacher.teacher import HubertTeacher
    from espnet_distill.train.distill import build_student

    torch.manual_seed(0)
    conv = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]
    model = HubertModel(HubertConfig(conv_layers=conv, embed_dim=32, ffn_dim=32, num_layers=3, num_heads=2,
                                     conv_pos=8, conv_pos_groups=4, final_dim=8, num_classes=6))
    save_hubert(tmp_path / "t.pt", model)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"backend": "local", "path": str(tmp_path / "t.pt")}))
    # a student initialised with the teacher's front-end and first two layers: those match exactly
    conf = {"student": {"frontend": "cnn", "frontend_conf": {"conv_layers": conv}, "dim": 32, "ffn_dim": 32,
                        "num_layers": 2, "num_heads": 2, "conv_pos": 8, "conv_pos_groups": 4,
                        "pred_head": "expand-last", "pred_targets": [3]},
            "init": {"frontend": True, "pos_conv": True, "layers": {1: 1, 2: 2}}}
    student, _ = build_student(conf, HubertTeacher(model))
    (tmp_path / "dt").mkdir()
    save_student(tmp_path / "dt/student.pt", student)
    d = make_data_dir(tmp_path, {f"s{i % 2}-{i:02d}": (f"s{i % 2}", "a") for i in range(8)})
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.analyze", "--teacher", str(tmp_path / "t.yaml"),
                        "--checkpoint", str(tmp_path / "dt/student.pt"), "--data-dir", str(d), "--outdir",
                        str(tmp_path / "out"), "--max-frames", "150"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "out/dt.cka.json").read_text())
    m = res["cka"]
    assert len(m) == 4
    assert len(m[0]) == 3
    assert res["frames"] == 150
    for layer in range(3):  # the copied layers are the teacher's own
        assert m[layer][layer] == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "out/dt.cka.png").stat().st_size > 1000


def test_analyze_names_a_bad_data_dir_in_one_line(tmp_path, caplog):
    from espnet_distill.bin import analyze

    d = make_data_dir(tmp_path, {"s0-00": ("s0", "a"), "s0-01": ("s0", "a")})
    (d / "utt2dur").write_text("s0-00 0.5\n")  # stale: s0-01 missing
    assert analyze.main(["--data-dir", str(d), "--outdir", str(tmp_path / "out")]) == 1
    assert f"{d / 'utt2dur'}: no duration for utterance 's0-01'" in caplog.text
