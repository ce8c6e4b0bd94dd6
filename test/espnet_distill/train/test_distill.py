"""The distillation task: L_reg and L_disc with every disc head, front-end adaptation that moves
the front-end alone, and the codebook L_disc needs."""
from __future__ import annotations

import pytest
import torch
from helpers import tiny_student_conf, tiny_teacher, toy_batch

from espnet_distill.config import ConfigError
from espnet_distill.losses import mean
from espnet_distill.train.distill import DistillConfig, DistillTask, build_student, l_disc_weight


@pytest.mark.parametrize("disc", ["type1", "type2", "type3"])
def test_distill_step_all_disc_heads(disc):
    teacher = tiny_teacher()
    student, _ = build_student(tiny_student_conf(disc=disc), teacher)
    task = DistillTask(student, teacher, alpha=0.5)
    terms = task.training_step(toy_batch(), step=0)
    mean(terms["loss"]).backward()
    assert {"reg", "disc", "l1_2", "cos_4"} <= set(terms)
    frames = float(task.teacher(toy_batch()["wav"], toy_batch()["lengths"]).mask.sum())
    assert all(float(count) == frames for _, count in terms.values())  # every term over the same frames
    assert student.disc_head.proj.weight.grad is not None
    if disc == "type1":  # the teacher's label embeddings are frozen inside the student
        assert "disc_head.label_embs" in student.state_dict()
        assert (not any(
            p is student.disc_head.label_embs for p in student.parameters()))
    v = task.validation_step(toy_batch())
    assert v["disc_top1_agree"][1] == float(task.teacher(toy_batch()["wav"], toy_batch()["lengths"]).mask.sum())


def test_front_end_adaptation_touches_only_the_front_end():
    teacher = tiny_teacher()
    student, _ = build_student(tiny_student_conf(frontend="fbank"), teacher)
    task = DistillTask(student, teacher, alpha=0.5, fe_adapt_steps=3)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        terms = task.training_step(toy_batch(), step)
        assert set(terms) == {"loss", "fe_l1"}
        mean(terms["loss"]).backward()
        opt.step()
    changed = {k for k, v in student.state_dict().items() if not torch.equal(v, before[k])}
    assert changed, changed
    assert all(k.startswith(("frontend.", "fe_head.")) for k in changed), changed
    assert any(k.startswith("frontend.conv") for k in changed)
    assert any(k.startswith("fe_head") for k in changed)
    terms = task.training_step(toy_batch(), 3)  # stage two: the whole student
    assert "reg" in terms
    assert "disc" in terms


def test_alpha_needs_a_codebook(caplog):
    """Without a codebook the task trains with L_reg alone, said once; a student without an L_disc
    head cannot take alpha > 0 from a teacher that has one."""
    teacher = tiny_teacher(num_classes=0)
    student, _ = build_student(tiny_student_conf(), teacher)
    assert student.disc_head is None
    with caplog.at_level("WARNING"):
        task = DistillTask(student, teacher, alpha=0.4)
    assert task.alpha == task.conf.alpha == 0.0
    assert [r.getMessage()[:12] for r in caplog.records if r.levelname == "WARNING"] == ["L_disc off: "]
    assert "disc" not in task.training_step(toy_batch(), 0)
    with pytest.raises(ConfigError, match="distill.alpha > 0 needs a student with a disc_head"):
        DistillTask(build_student(tiny_student_conf(disc=None), tiny_teacher())[0], tiny_teacher(), alpha=0.4)


def test_l_disc_is_off_in_one_warning_without_a_codebook(caplog):
    """A teacher without a codebook (a Hugging Face folder, WavLM) distils with L_reg alone."""
    assert l_disc_weight(0.4, tiny_teacher()) == 0.4
    with caplog.at_level("WARNING"):
        assert l_disc_weight(0.4, tiny_teacher(num_classes=0)) == 0.0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("L_disc off: teacher 'hubert' (our HubertModel) has no codebook head")
    assert "distill.alpha 0.4 is taken as 0" in warning
    assert l_disc_weight(0.0, tiny_teacher(num_classes=0)) == 0.0


def test_teacher_precision_under_autocast():
    """fp32 (the authors' choice): the teacher runs outside autocast, its targets equal those of a
    run without autocast; amp: its weights are cast once to the autocast dtype (bf16 here, on CPU)
    and its targets move by rounding only."""
    batch = toy_batch()
    ref = DistillTask(*_student_and_teacher(), alpha=0.5).teacher_outputs(batch)
    for precision, dtype in (("fp32", torch.float32), ("amp", torch.bfloat16)):
        task = DistillTask(*_student_and_teacher(), alpha=0.5, teacher_precision=precision)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = task.teacher_outputs(batch)
            terms = task.training_step(batch, 0)
        assert out.hidden[4].dtype == dtype
        assert next(task.teacher.parameters()).dtype == dtype
        m = out.mask
        if precision == "fp32":
            assert torch.equal(out.hidden[4][m], ref.hidden[4][m])
        else:
            rel = (out.hidden[4][m].float() - ref.hidden[4][m]).abs().mean() / ref.hidden[4][m].abs().mean()
            assert 0 < float(rel) < 0.05
        mean(terms["loss"]).backward()  # low-precision targets enter the student's backward
        assert torch.isfinite(mean(terms["loss"]))
    with pytest.raises(ConfigError, match="distill.teacher_precision"):
        DistillTask(*_student_and_teacher(), teacher_precision="fp16")


def test_teacher_mode_train_puts_its_dropouts_on_the_training_targets_only():
    """train: as s3prl's runner, which calls upstream.train() on the distiller and its frozen teacher
    (layer drop zeroed): the update's targets are the teacher's train-mode forward with the same
    random draws; validation, and teacher_mode eval, see the eval-mode targets."""
    batch = toy_batch()
    task = DistillTask(*_student_and_teacher(), teacher_mode="train")
    model = task.teacher.model
    assert model.encoder.layerdrop == 0.0 and model.cfg.dropout > 0
    ref = task.teacher_outputs(batch)  # validation
    torch.manual_seed(1)
    noisy = task.teacher_outputs(batch, training=True)
    assert not any(m.training for m in task.teacher.modules())  # back in eval mode
    torch.manual_seed(1)
    with torch.no_grad():
        model.train()
        theirs, _ = model(batch["wav"], batch["lengths"])
        model.eval()
    m = ref.mask
    assert torch.equal(noisy.hidden[4][m], theirs[4][m])
    assert not torch.allclose(noisy.hidden[4][m], ref.hidden[4][m])
    assert torch.equal(task.teacher_outputs(batch).hidden[4][m], ref.hidden[4][m])
    plain = DistillTask(*_student_and_teacher())  # eval (the default)
    assert torch.equal(plain.teacher_outputs(batch, training=True).hidden[4][m], ref.hidden[4][m])
    with pytest.raises(ConfigError, match="cache_teacher: true needs distill.teacher_mode: eval"):
        DistillConfig.from_dict({"teacher_mode": "train", "cache_teacher": True})


@pytest.mark.parametrize("disc", ["type1", "type2"])
def test_temperature_is_the_forks_on_both_sides(disc):
    """distill.temperature T as the fork (TCL606/s3prl pretrain/distillFBANK/pretrain_expert.py,
    compute_loss, use_temperature true): the teacher's cosine of final_proj to the label embeddings / T;
    the student's cosine (type 1) or Linear logits (type 2) / T; F.kl_div(log p_S, log p_T, log_target,
    batchmean) over the frames (one unpadded utterance, where the fork's mean and ours agree)."""
    import torch.nn.functional as F

    batch = toy_batch(1)
    teacher = tiny_teacher()
    student, _ = build_student(tiny_student_conf(disc=disc), teacher)
    student.eval()  # the same student forward here and in the task
    task = DistillTask(student, teacher, alpha=1.0, temperature=0.5)
    ours = mean(task.training_step(batch, step=0)["disc"])

    model = teacher.model
    with torch.no_grad():
        hidden, _ = model(batch["wav"], batch["lengths"])
        out = student(batch["wav"], batch["lengths"])
    n = min(hidden[-1].shape[1], out.hidden[-1].shape[1])
    embs = model.label_embs_concat
    t_logits = F.cosine_similarity(model.final_proj(hidden[-1][0, :n])[:, None], embs[None], dim=-1) / 0.5
    if disc == "type1":
        z = student.disc_head.proj(out.hidden[-1][0, :n])
        s_logits = F.cosine_similarity(z[:, None], embs[None], dim=-1) / 0.5
    else:
        s_logits = out.disc_logits[0, :n] / 0.5
    fork = F.kl_div(F.log_softmax(s_logits, -1), F.log_softmax(t_logits, -1), log_target=True, reduction="batchmean")
    assert float(ours) == pytest.approx(float(fork), rel=1e-4)
    untempered = mean(DistillTask(student, teacher, alpha=1.0).training_step(batch, step=0)["disc"])
    assert float(untempered) != pytest.approx(float(ours), rel=1e-2)  # null: the logits as they come
    with pytest.raises(ConfigError, match=r"distill.temperature = 0.0: expected positive"):
        DistillConfig.from_dict({"temperature": 0})


def _student_and_teacher():
    teacher = tiny_teacher()
    student, _ = build_student(tiny_student_conf(), teacher)
    return student, teacher


@pytest.mark.parametrize("change, message", [
    ({"init": {"layers": {1: 7}}}, r"init.layers = \{1: 7\}: expected teacher layers in 1..4 \(got 7\)"),
    ({"init": {"layers": {5: 1}}}, r"init.layers = \{5: 1\}: expected student layers in 1..2 \(got 5\)"),
    ({"student": {"dropout": 1.5}}, r"student.dropout = 1.5: expected a probability in \[0, 1\)"),
    ({"student": {"num_layers": 0}}, r"student.num_layers = 0: expected at least 1"),
    ({"student": {"num_heads": 5}}, r"student.num_heads = 5: expected a divisor of dim 24"),
    ({"student": {"frontend_conf": [1, 2]}}, r"frontend_conf: expected a mapping, got \[1, 2\]"),
    ({"student": {"frontend_conf": {"conv_layer": 3}}}, r"student.frontend_conf: .*conv_layer.* the 'cnn' front-end"),
    ({"train": {"weight_decay": -1}}, r"train.weight_decay = -1.0: expected 0 or more"),
    ({"train": {"max_batch_size": 0}}, r"train.max_batch_size = 0: expected at least 1 utterance"),
    ({"train": {"global_batch_seconds": -5}}, r"train.global_batch_seconds = -5.0: expected 0 \(off\) or positive"),
])
def test_bad_values_are_one_line_naming_key_and_range(change, message):
    conf = tiny_student_conf()
    for section, values in change.items():
        conf[section] = {**conf.get(section, {}), **values}
    with pytest.raises(ValueError, match=message):
        build_student(conf, tiny_teacher())


def test_init_frontend_that_copies_nothing_is_refused():
    conf = tiny_student_conf()
    conf["student"]["frontend_conf"] = {"conv_layers": [[8, 10, 5]] + [[8, 3, 2]] * 4 + [[8, 2, 2]] * 2}
    with pytest.raises(ValueError, match=r"init.frontend = True: .* none matched"):
        build_student(conf, tiny_teacher())
