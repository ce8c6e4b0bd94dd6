"""Pruned students: the teacher's copy, its gates, the expected size, and the removal of closed
structures (exact: the pruned model computes what the gated one computes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_teacher, toy_batch

from espnet_distill.config import ConfigError
from espnet_distill.student.export import export_onnx, load_student, quantize_int8, save_student
from espnet_distill.student.pruning import HardConcrete, PruneConfig, attach_gates, prune_student
from espnet_distill.train.distill import DistillRunConfig, build_student

PRUNED = {"student": {"pred_head": "layer-wise", "layer_map": {2: 2, 4: 4}, "disc_head": None, "dropout": 0.0,
                      "attention_dropout": 0.0, "activation_dropout": 0.0},
          "prune": {"target_params": 20000, "steps": 10}}


def teacher_copy():
    teacher = tiny_teacher()
    student, report = build_student(PRUNED, teacher)
    return student.eval(), teacher, report


def close_some(gates) -> None:
    """Fixed gates with closed channels, heads, units, one whole attention and one whole FFN."""
    torch.manual_seed(7)
    with torch.no_grad():
        for g in gates.groups.values():
            g.log_alpha.copy_(torch.randn(g.n) * 3)
        gates.groups["attn1"].log_alpha.fill_(-10)
        gates.groups["block2"].log_alpha.fill_(-10)
        gates.groups["heads3"].log_alpha.fill_(-10)
        gates.groups["ffn0"].log_alpha[:5] = 10


def test_a_pruned_student_starts_as_its_teacher():
    student, teacher, report = teacher_copy()
    assert not report["skipped"]
    wav, lengths = toy_batch()["wav"], toy_batch()["lengths"]
    t = teacher(wav, lengths)
    with torch.no_grad():
        out = student(wav, lengths)
    for a, b in zip(out.hidden, t.hidden):
        torch.testing.assert_close(a[out.mask], b[t.mask])
    torch.testing.assert_close(out.preds[4], t.hidden[4])  # the heads start at the identity


def test_pruned_run_refuses_sizes_and_init():
    teacher = tiny_teacher()
    with pytest.raises(ValueError, match=r"student \['dim'\]: a pruned student has the teacher's architecture"):
        build_student({**PRUNED, "student": {**PRUNED["student"], "dim": 16}}, teacher)
    with pytest.raises(ConfigError, match="init: a pruned student starts as a copy of the whole teacher"):
        DistillRunConfig.from_dict({**PRUNED, "init": {"frontend": True}})
    with pytest.raises(ConfigError, match=r"prune.structures = \['rows'\]"):
        DistillRunConfig.from_dict({**PRUNED, "prune": {"target_params": 1e4, "steps": 1, "structures": ["rows"]}})


def test_hard_concrete_gates():
    torch.manual_seed(0)
    g = HardConcrete(1000, 0.9)
    assert abs(float(g.prob_open().detach().mean()) - 0.9) < 0.01
    z = g.sample()
    assert float(z.min()) >= 0
    assert float(z.max()) <= 1
    assert 0.8 < float((z > 0).float().mean()) < 0.97  # a sample: about 90 % open
    with torch.no_grad():
        g.log_alpha[:300] = -8
    fixed = g.fixed()
    assert int((fixed > 0).sum()) == round(float(g.prob_open().sum()))
    assert float(fixed[:300].abs().sum()) == 0


def test_removing_closed_structures_gives_the_gated_outputs():
    student, teacher, _ = teacher_copy()
    gates = attach_gates(student, PruneConfig(**PRUNED["prune"]))
    close_some(gates)
    student.eval()
    wav, lengths = toy_batch()["wav"], toy_batch()["lengths"]
    with torch.no_grad():
        gated = student(wav, lengths)
    small = prune_student(student).eval()
    assert small.cfg.layer_heads[1] == 0  # the closed attention and FFN blocks are gone
    assert small.cfg.layer_ffn_dims[2] == 0
    assert small.cfg.layer_heads[3] == 0
    assert small.cfg.frontend_conf["conv_layers"][0][0] < 16
    assert not hasattr(small, "gates")
    with torch.no_grad():
        out = small(wav, lengths)
    for a, b in zip(out.hidden, gated.hidden):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for k in gated.preds:
        torch.testing.assert_close(out.preds[k], gated.preds[k], atol=1e-5, rtol=1e-4)


def test_expected_size_of_decided_gates_is_the_pruned_size():
    """The Lagrangian's size formula counts what removal leaves (gates decided: P(open) 0 or 1)."""
    student, _, _ = teacher_copy()
    gates = attach_gates(student, PruneConfig(**PRUNED["prune"]))
    full = student.param_counts()["total_without_heads"]
    assert gates.fixed_params + gates.full == full
    torch.manual_seed(3)
    with torch.no_grad():
        for g in gates.groups.values():
            g.log_alpha.copy_(torch.where(torch.rand(g.n) < 0.6, 30.0, -30.0))
    small = prune_student(student.eval())
    assert abs(float(gates.fixed_params + gates.expected_params()) - small.param_counts()["total_without_heads"]) < 1


def test_a_pruned_student_saves_loads_exports_and_quantizes(tmp_path):
    import onnxruntime

    student, _, _ = teacher_copy()
    close_some(attach_gates(student, PruneConfig(**PRUNED["prune"])))
    small = prune_student(student.eval()).eval()
    save_student(tmp_path / "s.pt", small)
    loaded, _ = load_student(tmp_path / "s.pt")
    wav, lengths = toy_batch()["wav"], toy_batch()["lengths"]
    with torch.no_grad():
        ref, mask = small.encode(wav, lengths)
        again, _ = loaded.encode(wav, lengths)
    for a, b in zip(ref, again):
        torch.testing.assert_close(a, b)
    path = export_onnx(loaded, tmp_path / "s.onnx")
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    hidden, frames = sess.run(None, {"wav": wav.numpy(), "lengths": lengths.numpy()})
    np.testing.assert_array_equal(frames, mask.sum(1).numpy())
    for a, b in zip(ref, hidden):
        assert float((a - torch.from_numpy(b)).abs()[mask].max()) < 1e-4
    int8 = quantize_int8(loaded)
    with torch.no_grad():
        q, _ = int8.encode(wav, lengths)
    assert q[-1].shape == ref[-1].shape


def test_a_pruned_student_exports_to_hugging_face_padded_exactly(tmp_path):
    """transformers has one size per layer: zero heads and units pad the pruned layers, exactly."""
    from transformers import HubertModel

    from espnet_distill.student.export import export_hf

    student, _, _ = teacher_copy()
    close_some(attach_gates(student, PruneConfig(**PRUNED["prune"])))
    small = prune_student(student.eval()).eval()
    export_hf(small, tmp_path / "hf")
    hf = HubertModel.from_pretrained(tmp_path / "hf").eval()
    wav = toy_batch(1)["wav"]
    with torch.no_grad():
        ours, _ = small.encode(wav, torch.tensor([wav.shape[1]]))
        theirs = hf(wav, output_hidden_states=True).hidden_states
    assert len(theirs) == len(ours)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_decided_gates_land_at_the_target_from_above():
    """Gates that the Lagrangian left too open still give target_params, less at most one head."""
    student, _, _ = teacher_copy()
    gates = attach_gates(student, PruneConfig(**PRUNED["prune"]))  # all gates about 95 % open
    small = prune_student(student.eval())
    size = small.param_counts()["total_without_heads"]
    one_head = 4 * 32 * 16 + 3 * 16
    assert PRUNED["prune"]["target_params"] - one_head < size <= PRUNED["prune"]["target_params"]
    assert size == gates.fixed_params + gates.expected_params(gates=gates.decide())


def test_the_benchmark_times_a_pruned_student():
    from espnet_distill.analysis.benchmark import bench_from_student, run

    student, _, _ = teacher_copy()
    close_some(attach_gates(student, PruneConfig(**PRUNED["prune"])))
    small = prune_student(student.eval()).eval()
    rows, table = run([bench_from_student("pruned", small)], batch_sizes=(1,), seconds=1.0, repeats=1)
    assert rows[0]["params"]["encoder"] == small.param_counts()["encoder"]
    assert "heads [" in rows[0]["encoder_key"]
    assert "pruned" in table
