"""Students: paper-size parameter counts, init from the teacher, front-end adaptation, export."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from espnet_distill.bin.distill_train import build_student
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.student.export import export_distiller_local, load_student, save_student
from espnet_distill.student.model import Student, StudentConfig
from espnet_distill.teacher.checkpoints import CheckpointError
from espnet_distill.teacher.teacher import HubertTeacher
from espnet_distill.train.distill import DistillTask

ROOT = Path(__file__).resolve().parents[3]
PAPER = ROOT / "espnet_distill/conf/paper"
CONV16 = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]


class BaseShapedTeacher(HubertTeacher):
    """HuBERT Base's shape (random weights), for parameter counts."""

    def __init__(self):
        super().__init__(HubertModel(HubertConfig()), "hubert-base-shape")


@pytest.fixture(scope="module")
def base_teacher():
    return BaseShapedTeacher()


@pytest.mark.parametrize("name,millions", [("sw", 23.49), ("dt", 22.94), ("dt_fbank", 19.11)])
def test_paper_parameter_counts(base_teacher, name, millions):
    conf = yaml.safe_load((PAPER / f"{name}.yaml").read_text())
    student, report = build_student(conf, base_teacher)
    n = student.param_counts()["total_without_heads"]
    assert abs(n / 1e6 - millions) < 0.05, (name, n)
    assert student.cfg.teacher_dim == 768 and student.cfg.num_classes == 504


def test_sw_init_copies_cnn_and_first_layers(base_teacher):
    conf = yaml.safe_load((PAPER / "sw.yaml").read_text())
    student, report = build_student(conf, base_teacher)
    t = base_teacher.model.state_dict()
    s = student.state_dict()
    assert torch.equal(s["frontend.feature_extractor.conv_layers.3.0.weight"], t["feature_extractor.conv_layers.3.0.weight"])
    assert torch.equal(s["encoder.layers.1.fc1.weight"], t["encoder.layers.1.fc1.weight"])
    assert torch.equal(s["encoder.pos_conv.0.weight_v"], t["encoder.pos_conv.0.weight_v"])
    assert "frontend.post_extract_proj.weight" in report["copied"]
    # what the copy is for: before any distillation a student whose front-end is HuBERT's (with the
    # LayerNorm after the CNN, which the paper's DistilHuBERT-style config leaves out so that it
    # exports to distiller_local) reproduces the teacher's first layers
    conf["student"]["frontend_conf"] = dict(conf["student"].get("frontend_conf") or {}, layer_norm=True)
    student, report = build_student(conf, base_teacher)
    assert "frontend.layer_norm.weight" in report["copied"]
    student.eval()
    torch.manual_seed(3)
    wav, n = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    with torch.no_grad():
        hs, mask = student.encode(wav, n)
        ht, tmask = base_teacher.model(wav, n, num_layers=2)
    assert torch.equal(mask, tmask)
    for layer in range(3):
        torch.testing.assert_close(hs[layer][mask], ht[layer][mask], atol=1e-4, rtol=1e-4)


def tiny_teacher(num_classes=10):
    torch.manual_seed(0)
    cfg = HubertConfig(conv_layers=CONV16, embed_dim=32, ffn_dim=64, num_layers=4, num_heads=2, conv_pos=8,
                       conv_pos_groups=4, final_dim=8, num_classes=num_classes)
    return HubertTeacher(HubertModel(cfg))


def tiny_conf(frontend="cnn", head="layer-wise", disc="type2"):
    student = {"frontend": frontend, "dim": 24, "ffn_dim": 24, "num_layers": 2, "num_heads": 2, "conv_pos": 8,
               "conv_pos_groups": 4, "pred_head": head, "disc_head": disc}
    if frontend == "cnn":
        student["frontend_conf"] = {"conv_layers": CONV16, "layer_norm": False}
    if head == "layer-wise":
        student["layer_map"] = {1: 2, 2: 4}
    else:
        student["pred_targets"] = [2, 4]
    return {"student": student, "init": {"frontend": True}}


def batch(n=2):
    torch.manual_seed(5)
    return {"utt": [f"u{i}" for i in range(n)], "wav": torch.randn(n, 6000) * 0.1, "lengths": torch.tensor([6000, 4500][:n])}


@pytest.mark.parametrize("disc", ["type1", "type2", "type3"])
def test_distill_step_all_disc_heads(disc):
    teacher = tiny_teacher()
    student, _ = build_student(tiny_conf(disc=disc), teacher)
    task = DistillTask(student, teacher, alpha=0.5)
    loss, stats = task.training_step(batch(), step=0)
    loss.backward()
    assert {"reg", "disc", "l1_2", "cos_4"} <= set(stats)
    assert student.disc_head.proj.weight.grad is not None
    if disc == "type1":  # the teacher's label embeddings are frozen inside the student
        assert "disc_head.label_embs" in student.state_dict() and not any(
            p is student.disc_head.label_embs for p in student.parameters())
    v = task.validation_step(batch())
    assert v["disc_top1_agree"][1] == float(task.teacher(batch()["wav"], batch()["lengths"]).mask.sum())


def test_front_end_adaptation_touches_only_the_front_end():
    teacher = tiny_teacher()
    student, _ = build_student(tiny_conf(frontend="fbank"), teacher)
    task = DistillTask(student, teacher, alpha=0.5, fe_adapt_steps=3)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        loss, stats = task.training_step(batch(), step)
        assert set(stats) == {"fe_l1"}
        loss.backward()
        opt.step()
    changed = {k for k, v in student.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("frontend.", "fe_head.")) for k in changed), changed
    assert any(k.startswith("frontend.conv") for k in changed) and any(k.startswith("fe_head") for k in changed)
    loss, stats = task.training_step(batch(), 3)  # stage two: the whole student
    assert "reg" in stats and "disc" in stats


def test_alpha_needs_a_codebook():
    teacher = tiny_teacher(num_classes=0)
    student, _ = build_student(tiny_conf(), teacher)
    assert student.disc_head is None
    with pytest.raises(Exception, match="L_disc .* needs a teacher with a codebook head"):
        DistillTask(student, teacher, alpha=0.4)


def test_our_export_rebuilds_from_file_alone(tmp_path):
    teacher = tiny_teacher()
    for fe in ("cnn", "fbank"):
        student, _ = build_student(tiny_conf(frontend=fe), teacher)
        student.eval()
        save_student(tmp_path / f"{fe}.pt", student)
        again, _ = load_student(tmp_path / f"{fe}.pt")
        b = batch()
        h1, _ = student.encode(b["wav"], b["lengths"])
        h2, _ = again.encode(b["wav"], b["lengths"])
        for x, y in zip(h1, h2):
            torch.testing.assert_close(x, y)
    torch.save({"format": "something.else"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not an espnet_distill student checkpoint"):
        load_student(tmp_path / "bad.pt")


@pytest.mark.parametrize("head", ["expand-last", "layer-wise"])
def test_distiller_local_export_loads_in_s3prl(tmp_path, head):
    from s3prl.nn import S3PRLUpstream

    teacher = tiny_teacher()
    student, _ = build_student(tiny_conf(head=head), teacher)
    student.eval()
    export_distiller_local(student, tmp_path / "d.pt")
    up = S3PRLUpstream("distiller_local", path_or_url=str(tmp_path / "d.pt")).eval()
    wav = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        hs, _ = up(wav, torch.tensor([8000]))
        ours, _ = student.encode(wav, torch.tensor([8000]))
        preds = student.pred_head(ours)
    t = ours[0].shape[1]
    # s3prl's hidden states: projected CNN features, then every layer, then the predictions
    for layer in range(1, 3):
        torch.testing.assert_close(hs[layer][:, :t], ours[layer], atol=1e-5, rtol=1e-4)
    if head == "expand-last":
        for i, target in enumerate([2, 4]):
            torch.testing.assert_close(hs[3 + i][:, :t], preds[target], atol=1e-5, rtol=1e-4)


def test_distiller_local_refuses_what_it_cannot_hold(tmp_path):
    teacher = tiny_teacher()
    conf = tiny_conf()
    conf["student"]["frontend_conf"]["layer_norm"] = True
    student, _ = build_student(conf, teacher)
    with pytest.raises(CheckpointError, match="no LayerNorm after the CNN"):
        export_distiller_local(student, tmp_path / "x.pt")
    fb, _ = build_student(tiny_conf(frontend="fbank"), teacher)
    with pytest.raises(CheckpointError, match="waveform-CNN students only"):
        export_distiller_local(fb, tmp_path / "y.pt")


def test_bad_student_configs():
    with pytest.raises(ValueError, match="unknown front-end 'mfcc'"):
        Student(StudentConfig(frontend="mfcc"))
    with pytest.raises(ValueError, match="unknown student config keys \\['widht'\\]"):
        StudentConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match=r"unknown prediction head 'bogus'; choose one of \['expand-last', 'layer-wise'\]"):
        build_student({"student": dict(tiny_conf()["student"], pred_head="bogus")}, tiny_teacher())
    with pytest.raises(ValueError, match=r"unknown L_disc head 'type9'; choose one of \['type1', 'type2', 'type3'\]"):
        build_student({"student": dict(tiny_conf()["student"], disc_head="type9")}, tiny_teacher())
    with pytest.raises(ValueError, match="layer_map names student layer 5, but the student has layers 1..2"):
        build_student({"student": dict(tiny_conf()["student"], layer_map={5: 1})}, tiny_teacher())
    with pytest.raises(ValueError, match="layer_map targets \\[9\\] are not teacher layers 0..4"):
        build_student({"student": dict(tiny_conf()["student"], layer_map={1: 9})}, tiny_teacher())
