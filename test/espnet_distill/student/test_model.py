"""Students: paper-size parameter counts, init from the teacher, export, config errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_student_conf, tiny_teacher, toy_batch

from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.nn.hubert import HubertConfig, HubertModel, SelfAttention
from espnet_distill.student import model as student_model
from espnet_distill.student.export import export_distiller_local, load_student, save_student
from espnet_distill.student.model import Student, StudentConfig
from espnet_distill.teacher.teacher import HubertTeacher
from espnet_distill.train.distill import build_student

ROOT = Path(__file__).resolve().parents[3]
PAPER = ROOT / "espnet_distill/conf/paper"
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
    assert student.cfg.teacher_dim == 768
    assert student.cfg.num_classes == 504


def test_sw_init_copies_cnn_and_first_layers(base_teacher):
    conf = yaml.safe_load((PAPER / "sw.yaml").read_text())
    student, report = build_student(conf, base_teacher)
    t = base_teacher.model.state_dict()
    s = student.state_dict()
    assert torch.equal(s["frontend.feature_extractor.conv_layers.3.0.weight"],
                       t["feature_extractor.conv_layers.3.0.weight"])
    assert torch.equal(s["encoder.layers.1.fc1.weight"], t["encoder.layers.1.fc1.weight"])
    assert torch.equal(s["encoder.pos_conv.0.weight_v"], t["encoder.pos_conv.0.weight_v"])
    assert "frontend.post_extract_proj.weight" in report["copied"]
    assert "encoder.layer_norm.weight" not in report["copied"]  # as the authors' fork: a fresh LayerNorm
    # what the copy is for: before any distillation a student whose front-end is HuBERT's (with the
    # LayerNorm after the CNN, which the paper's DistilHuBERT-style config leaves out so that it
    # exports to distiller_local, and with the encoder's LayerNorm, which init.encoder_layer_norm
    # copies with the layers) reproduces the teacher's first layers
    conf["student"]["frontend_conf"] = dict(conf["student"].get("frontend_conf") or {}, layer_norm=True)
    conf["init"]["encoder_layer_norm"] = True
    student, report = build_student(conf, base_teacher)
    assert {"frontend.layer_norm.weight", "encoder.layer_norm.weight"} <= set(report["copied"])
    student.eval()
    torch.manual_seed(3)
    wav, n = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    with torch.no_grad():
        hs, mask = student.encode(wav, n)
        ht, tmask = base_teacher.model(wav, n, num_layers=2)
    assert torch.equal(mask, tmask)
    for layer in range(3):
        torch.testing.assert_close(hs[layer][mask], ht[layer][mask], atol=1e-4, rtol=1e-4)


def test_our_export_rebuilds_from_file_alone(tmp_path):
    teacher = tiny_teacher()
    for fe in ("cnn", "fbank"):
        student, _ = build_student(tiny_student_conf(frontend=fe), teacher)
        student.eval()
        save_student(tmp_path / f"{fe}.pt", student)
        again, _ = load_student(tmp_path / f"{fe}.pt")
        b = toy_batch()
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
    student, _ = build_student(tiny_student_conf(head=head), teacher)
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
    conf = tiny_student_conf()
    conf["student"]["frontend_conf"]["layer_norm"] = True
    student, _ = build_student(conf, teacher)
    with pytest.raises(CheckpointError, match="no LayerNorm after the CNN"):
        export_distiller_local(student, tmp_path / "x.pt")
    fb, _ = build_student(tiny_student_conf(frontend="fbank"), teacher)
    with pytest.raises(CheckpointError, match="waveform-CNN students only"):
        export_distiller_local(fb, tmp_path / "y.pt")


def test_bad_student_configs():
    with pytest.raises(ValueError, match="student.frontend = 'mfcc': expected cnn or fbank"):
        Student(StudentConfig(frontend="mfcc"))
    with pytest.raises(ValueError, match="unknown student config keys \\['widht'\\]"):
        StudentConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError,
                       match=r"unknown prediction head 'bogus'; choose one of \['expand-last', 'layer-wise'\]"):
        build_student({"student": dict(tiny_student_conf()["student"], pred_head="bogus")}, tiny_teacher())
    with pytest.raises(ValueError, match=r"unknown L_disc head 'type9'; choose one of "
                                         r"\['type1', 'type2', 'type3', 'type3_cosine'\]"):
        build_student({"student": dict(tiny_student_conf()["student"], disc_head="type9")}, tiny_teacher())
    with pytest.raises(ValueError, match="layer_map names student layer 5, but the student has layers 1..2"):
        build_student({"student": dict(tiny_student_conf()["student"], layer_map={5: 1})}, tiny_teacher())
    with pytest.raises(ValueError, match="layer_map targets \\[9\\] are not teacher layers 0..4"):
        build_student({"student": dict(tiny_student_conf()["student"], layer_map={1: 9})}, tiny_teacher())


def test_type3_cosine_is_the_authors_type3():
    """The fork's type 3 (TCL606/s3prl pretrain/distillFBANK/pretrain_expert.py, compute_loss): cosine of
    Linear(D, 256) to [the argmax's embedding; all embeddings] / T, the duplicate masked, cross-entropy on 0."""
    import torch.nn.functional as F

    from espnet_distill.losses import disc_loss, mean
    from espnet_distill.student.heads import build_disc_head

    torch.manual_seed(0)
    embs, tau = torch.randn(6, 4), 0.1
    head = build_disc_head("type3_cosine", 8, embs, tau)
    h, teacher_logits = torch.randn(2, 5, 8), torch.randn(2, 5, 6)
    ours = mean(disc_loss(head(h), teacher_logits, torch.ones(2, 5, dtype=torch.bool), head.loss))

    z = head.proj(h).reshape(10, 4)
    pos = embs[teacher_logits.reshape(10, 6).argmax(-1)]  # (BT, F)
    negs = embs[:, None].expand(-1, 10, -1)  # (C, BT, F)
    logits = F.cosine_similarity(z, torch.cat([pos[None], negs]), dim=-1) / tau  # (1 + C, BT)
    logits[1:][(pos == negs).all(-1)] = float("-inf")
    fork = F.cross_entropy(logits.T, torch.zeros(10, dtype=torch.long))
    assert float(ours) == pytest.approx(float(fork), rel=1e-5)


def fork_init_bert_params(module: torch.nn.Module) -> None:
    """The fork's init_bert_params (TCL606/s3prl, upstream/distiller_fbank/module.py), written out for
    our attention block, which plays fairseq's MultiheadAttention."""
    if isinstance(module, torch.nn.Linear):
        module.weight.data.normal_(mean=0.0, std=0.02)
        if module.bias is not None:
            module.bias.data.zero_()
    if isinstance(module, SelfAttention):
        for proj in (module.q_proj, module.k_proj, module.v_proj):
            proj.weight.data.normal_(mean=0.0, std=0.02)


def test_bert_encoder_init_is_the_forks_init_bert_params(monkeypatch):
    conf = {**tiny_student_conf("fbank")["student"], "dim": 64, "ffn_dim": 128, "num_heads": 4,
            "encoder_init": "bert"}
    torch.manual_seed(0)
    ours = Student(StudentConfig.from_dict(conf)).state_dict()
    monkeypatch.setitem(student_model.ENCODER_INITS, "bert", lambda enc: enc.apply(fork_init_bert_params))
    torch.manual_seed(0)
    theirs = Student(StudentConfig.from_dict(conf)).state_dict()
    assert list(ours) == list(theirs)
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    linear = [k for k in ours if k.startswith("encoder.layers.") and k.endswith(("fc1.weight", "q_proj.weight"))]
    assert abs(float(torch.cat([ours[k].flatten() for k in linear]).std()) - 0.02) < 0.002
    assert all(float(ours[k.replace("weight", "bias")].abs().max()) == 0 for k in linear)
    with pytest.raises(Exception, match="student.encoder_init"):
        StudentConfig.from_dict({**conf, "encoder_init": "xavier"})
