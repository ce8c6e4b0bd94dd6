"""The ESPnet frontend over our students and teachers."""
from __future__ import annotations

import pytest
import torch

from espnet_distill.asr.frontend import DistilledFrontend, PassThroughEncoder
from espnet_distill.asr.task import register
from espnet_distill.bin.distill_train import build_student
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.student.export import save_student
from espnet_distill.teacher.checkpoints import CheckpointError, save_hubert
from espnet_distill.teacher.teacher import HubertTeacher

CONV16 = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("fe")
    torch.manual_seed(0)
    teacher = HubertModel(HubertConfig(conv_layers=CONV16, embed_dim=32, ffn_dim=64, num_layers=2, num_heads=2,
                                       conv_pos=8, conv_pos_groups=4, final_dim=8, num_classes=6))
    save_hubert(d / "teacher.pt", teacher)
    conf = {"student": {"frontend": "fbank", "dim": 24, "ffn_dim": 24, "num_layers": 3, "num_heads": 2, "conv_pos": 8,
                        "conv_pos_groups": 4, "pred_head": "layer-wise", "layer_map": {1: 1, 3: 2}, "disc_head": "type2"}}
    student, _ = build_student(conf, HubertTeacher(teacher))
    save_student(d / "student.pt", student)
    return d


def wav():
    torch.manual_seed(1)
    return torch.randn(2, 8000) * 0.1, torch.tensor([8000, 6000])


@pytest.mark.parametrize("layer", ["last", "weighted", 1])
def test_forward_backward_and_lengths(ckpts, layer):
    fe = DistilledFrontend(str(ckpts / "student.pt"), layer=layer)
    fe.train()
    x, n = wav()
    feats, lens = fe(x, n)
    assert feats.shape == (2, 24, 24) and fe.output_size() == 24
    assert lens.tolist() == [(8000 - 400) // 320 + 1, (6000 - 400) // 320 + 1]
    feats.sum().backward()
    assert fe.upstream.frontend.conv.weight.grad is not None
    if layer == "weighted":
        assert fe.layer_weights.grad is not None
    assert fe.upstream.pred_head is None and fe.upstream.disc_head is None  # distillation heads dropped


def test_freeze_steps(ckpts):
    fe = DistilledFrontend(str(ckpts / "student.pt"), layer="weighted", freeze_steps=2)
    fe.train()
    x, n = wav()
    for step in range(3):
        fe.zero_grad()
        feats, _ = fe(x, n)
        feats.sum().backward()
        grad = fe.upstream.encoder.layers[0].fc1.weight.grad
        assert (grad is None) == (step < 2), step
    assert fe.layer_weights.grad is not None  # the layer weights learn from the start


def test_teacher_as_frontend(ckpts):
    fe = DistilledFrontend(str(ckpts / "teacher.pt"), layer="last")
    assert fe.kind == "teacher" and fe.output_size() == 32
    feats, lens = fe(*wav())
    assert feats.shape == (2, 24, 32)
    assert not any("label_embs" in k for k in fe.state_dict())


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        DistilledFrontend(str(tmp_path / "missing.pt"))
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="neither an espnet_distill student nor a HuBERT checkpoint"):
        DistilledFrontend(str(tmp_path / "other.pt"))


def test_registered_in_espnet():
    from espnet2.tasks import asr

    register()
    assert asr.frontend_choices.get_class("distilled") is DistilledFrontend
    assert asr.encoder_choices.get_class("passthrough") is PassThroughEncoder
    enc = PassThroughEncoder(24, output_size=16)
    y, lens, _ = enc(torch.randn(2, 5, 24), torch.tensor([5, 3]))
    assert y.shape == (2, 5, 16) and lens.tolist() == [5, 3]
