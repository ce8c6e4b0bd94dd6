"""The ESPnet frontend over our students and teachers."""
from __future__ import annotations

import pytest
import torch

from espnet_distill.asr.frontend import DistilledFrontend, PassThroughEncoder
from espnet_distill.asr.task import register
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.student.export import save_student
from espnet_distill.teacher.checkpoints import save_hubert
from espnet_distill.teacher.teacher import HubertTeacher
from espnet_distill.train.distill import build_student

CONV16 = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("fe")
    torch.manual_seed(0)
    teacher = HubertModel(HubertConfig(conv_layers=CONV16, embed_dim=32, ffn_dim=64, num_layers=2, num_heads=2,
                                       conv_pos=8, conv_pos_groups=4, final_dim=8, num_classes=6))
    save_hubert(d / "teacher.pt", teacher)
    conf = {"student": {"frontend": "fbank", "dim": 24, "ffn_dim": 24, "num_layers": 3, "num_heads": 2, "conv_pos": 8,
                        "conv_pos_groups": 4, "pred_head": "layer-wise", "layer_map": {1: 1, 3: 2},
                        "disc_head": "type2"}}
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
    assert feats.shape == (2, 24, 24)
    assert fe.output_size() == 24
    assert lens.tolist() == [(8000 - 400) // 320 + 1, (6000 - 400) // 320 + 1]
    feats.sum().backward()
    assert fe.upstream.frontend.conv.weight.grad is not None
    if layer == "weighted":
        assert fe.layer_weights.grad is not None
    assert fe.upstream.pred_head is None
    assert fe.upstream.disc_head is None  # distillation heads dropped


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


def test_a_frozen_frontend_stays_in_eval_mode_and_only_its_layer_weights_learn(ckpts):
    """SUPERB's protocol: the upstream never trains and runs without dropout, also while ESPnet
    trains the model around it; the weighted sum's weights are the frontend's only trainable part."""
    fe = DistilledFrontend(str(ckpts / "student.pt"), layer="weighted", frozen=True, dropout=0.5)
    fe.train()
    assert fe.training and not fe.upstream.training and not any(m.training for m in fe.upstream.modules())
    assert [n for n, p in fe.named_parameters() if p.requires_grad] == ["layer_weights"]
    x, n = wav()
    first, _ = fe(x, n)
    second, _ = fe(x, n)
    assert torch.equal(first, second)  # no dropout in training (dropout=0.5 would differ)
    first.sum().backward()
    assert fe.layer_weights.grad is not None
    assert all(p.grad is None for p in fe.upstream.parameters())
    unfrozen = DistilledFrontend(str(ckpts / "student.pt"), layer="weighted", dropout=0.5).train()
    assert not torch.equal(unfrozen(x, n)[0], unfrozen(x, n)[0])  # the same options, not frozen: dropout acts


def test_teacher_as_frontend(ckpts):
    fe = DistilledFrontend(str(ckpts / "teacher.pt"), layer="last")
    assert fe.kind == "teacher"
    assert fe.output_size() == 32
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
    assert y.shape == (2, 5, 16)
    assert lens.tolist() == [5, 3]


def test_espnet_init_keeps_the_distilled_weights(ckpts, tmp_path):
    """ESPnet's ``init: xavier_uniform`` re-initialises every parameter, then asks the frontend to
    reload its pretrained weights: the fine-tuning starts from the distilled student."""
    import yaml

    from espnet_distill.asr.task import ASRTask
    from espnet_distill.student.export import load_student

    register()
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    conf = {"frontend": "distilled", "frontend_conf": {"checkpoint": str(ckpts / "student.pt")}, "normalize": None,
            "encoder": "passthrough", "model_conf": {"ctc_weight": 1.0}, "init": "xavier_uniform"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(conf))
    args = ASRTask.get_parser().parse_args(["--config", str(tmp_path / "c.yaml"), "--token_list",
                                            str(tmp_path / "tokens.txt")])
    model = ASRTask.build_model(args)
    student, _ = load_student(ckpts / "student.pt")
    ours = model.frontend.upstream.state_dict()
    for k, v in student.state_dict().items():
        if k in ours:
            assert torch.equal(ours[k], v), k
    assert not torch.equal(model.ctc.ctc_lo.weight, torch.zeros_like(model.ctc.ctc_lo.weight))


def test_masks_hit_the_transformer_input_in_training_only(ckpts):
    x, n = wav()
    for kind in ("time", "channel"):
        opts = {"mask_time_prob": 0.5, "mask_time_length": 3} if kind == "time" else \
            {"mask_channel_prob": 0.3, "mask_channel_length": 4}
        fe = DistilledFrontend(str(ckpts / "student.pt"), **opts)
        seen = []
        fe.upstream.encoder.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(args[0].detach().clone()))
        fe.eval()
        fe(x, n)
        feats, mask = fe.upstream.features(x, n)
        torch.testing.assert_close(seen[0], feats)  # eval: untouched
        fe.train()
        torch.manual_seed(0)
        fe(x, n)
        if kind == "time":
            masked = (seen[1] == fe.masking.mask_emb).all(-1)  # (B, T)
            assert masked[mask].any()
            assert not masked[~mask].any()  # padding is never masked
        else:
            zeroed = (seen[1] == 0).all(1)  # (B, D): channels zeroed over the whole utterance
            assert zeroed.any()
            assert not zeroed.all()
    with pytest.raises(ValueError, match="time_prob must be in"):
        DistilledFrontend(str(ckpts / "student.pt"), mask_time_prob=1.5)


def test_random_equalisation_colours_the_training_input_only(ckpts):
    x, n = wav()
    fe = DistilledFrontend(str(ckpts / "student.pt"), eq_max_db=12.0)
    seen = []
    fe.upstream.frontend.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(args[0].detach().clone()))
    fe.eval()
    fe(x, n)
    torch.testing.assert_close(seen[0], x)  # decoding hears the audio as it is
    fe.train()
    fe(x, n)
    assert not torch.allclose(seen[1], x, atol=1e-3)
    assert torch.all(seen[1][1, 6000:] == 0)  # padding stays silent
    with pytest.raises(ValueError, match="eq_max_db"):
        DistilledFrontend(str(ckpts / "student.pt"), eq_max_db=-1.0)


def test_random_crops_shorten_the_training_input_only(ckpts):
    x, n = wav()
    fe = DistilledFrontend(str(ckpts / "student.pt"), crop_max_ms=100.0)
    fe.eval()
    _, lens = fe(x, n)
    assert lens.tolist() == [(8000 - 400) // 320 + 1, (6000 - 400) // 320 + 1]
    fe.train()
    torch.manual_seed(0)
    feats, lens_cut = fe(x, n)
    assert (lens_cut <= lens).all()
    assert (lens_cut < lens).any()
    assert feats.shape[1] == int(lens_cut.max())  # no wider than the longest (ESPnet asserts it)
    assert (lens_cut >= (n * 0.6 - 400) // 320 + 1).all()  # at most a fifth off each end
    feats.sum().backward()


def test_onset_trim_starts_training_utterances_at_their_voicing(ckpts):
    """``onset_trim_prob: 1``: in training, an utterance that opens with 200 ms of noise before
    its vowel reaches the student without them; decoding hears it whole."""
    t = torch.arange(8000) / 16000
    vowel = sum(torch.sin(2 * torch.pi * 150 * k * t) / k for k in range(1, 6)) * 0.4
    x = torch.cat([0.1 * torch.randn(1, 3200, generator=torch.Generator().manual_seed(0)), vowel[None]], 1)
    n = torch.tensor([11200])
    fe = DistilledFrontend(str(ckpts / "student.pt"), onset_trim_prob=1.0)
    seen = []
    fe.upstream.frontend.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(args[0].detach().clone()))
    fe.eval()
    fe(x, n)
    torch.testing.assert_close(seen[0], x)
    fe.train()
    feats, lens = fe(x, n)
    cut = 11200 - seen[1].shape[1]
    assert 3200 - 640 <= cut <= 3200  # the noise, less a 40 ms frame at most
    torch.testing.assert_close(seen[1], x[:, cut:])
    assert lens.tolist() == [(11200 - cut - 400) // 320 + 1]
    with pytest.raises(ValueError, match="onset_trim_prob"):
        DistilledFrontend(str(ckpts / "student.pt"), onset_trim_prob=1.5)


@pytest.mark.parametrize("name", ["student.pt", "teacher.pt"])
def test_fairseq_fine_tuning_options_freeze_the_feature_extractor_and_drop_layers(ckpts, name):
    """feature_grad_mult 0 (fairseq's fine-tuning): the feature extractor never learns, the rest does;
    layerdrop reaches the transformer."""
    fe = DistilledFrontend(str(ckpts / name), feature_grad_mult=0.0, layerdrop=0.1)
    fe.train()
    x, n = wav()
    torch.manual_seed(0)  # layer drop draws: this seed keeps every layer
    feats, _ = fe(x, n)
    feats.sum().backward()
    extractor, transformer = (fe.upstream.frontend, fe.upstream.encoder) if name == "student.pt" else (
        fe.upstream.model.feature_extractor, fe.upstream.model.encoder)
    first = fe.upstream.frontend.conv.weight if name == "student.pt" else extractor.conv_layers[0][0].weight
    assert first.grad is None
    assert all(layer.fc1.weight.grad is not None for layer in transformer.layers)
    assert transformer.layerdrop == 0.1
    with pytest.raises(ValueError, match="layerdrop = 1.0: expected a probability"):
        DistilledFrontend(str(ckpts / name), layerdrop=1.0)


@pytest.mark.parametrize("name", ["student.pt", "teacher.pt"])
def test_fine_tuning_dropouts_replace_the_distilled_ones(ckpts, name):
    """fairseq's HuBERT fine-tuning dropouts (0, 0, 0.1 in base_10h): with all three at 0 a training
    forward is the evaluation forward; unset, the distilled dropouts (0.1) still act."""
    x, n = wav()
    quiet = DistilledFrontend(str(ckpts / name), dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    ref = quiet.eval()(x, n)[0]
    assert torch.equal(quiet.train()(x, n)[0], ref)
    layer = quiet.upstream.encoder.layers[0] if name == "student.pt" else quiet.upstream.model.encoder.layers[0]
    assert (layer.dropout, layer.self_attn.dropout, layer.act_dropout) == (0.0, 0.0, 0.0)
    as_distilled = DistilledFrontend(str(ckpts / name)).train()
    assert not torch.equal(as_distilled(x, n)[0], ref)
    only_ffn = DistilledFrontend(str(ckpts / name), dropout=0.0, attention_dropout=0.0, activation_dropout=0.1)
    assert not torch.equal(only_ffn.train()(x, n)[0], ref)
    with pytest.raises(ValueError, match="attention_dropout = 1.5: expected a probability"):
        DistilledFrontend(str(ckpts / name), attention_dropout=1.5)


def test_reuse_mask_emb_starts_the_time_masks_from_the_teachers(ckpts, tmp_path, caplog):
    """reuse_mask_emb: the time masks' embedding is the HuBERT teacher's pretrained mask_emb, also
    after ESPnet's init: has re-initialised every parameter; a student has none and gets a new one."""
    import yaml

    from espnet_distill.asr.task import ASRTask
    from espnet_distill.teacher.checkpoints import load_hubert

    pretrained = load_hubert(ckpts / "teacher.pt")[0].mask_emb
    register()
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    conf = {"frontend": "distilled", "normalize": None, "encoder": "passthrough", "model_conf": {"ctc_weight": 1.0},
            "frontend_conf": {"checkpoint": str(ckpts / "teacher.pt"), "mask_time_prob": 0.5, "reuse_mask_emb": True},
            "init": "xavier_uniform"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(conf))
    args = ASRTask.get_parser().parse_args(["--config", str(tmp_path / "c.yaml"), "--token_list",
                                            str(tmp_path / "tokens.txt")])
    assert torch.equal(ASRTask.build_model(args).frontend.masking.mask_emb, pretrained)
    assert not torch.equal(DistilledFrontend(str(ckpts / "teacher.pt"), mask_time_prob=0.5).masking.mask_emb,
                           pretrained)  # the default: a new embedding
    with caplog.at_level("INFO"):  # the fixture's student (24 wide) could not keep its 32-wide teacher's
        DistilledFrontend(str(ckpts / "student.pt"), mask_time_prob=0.5, reuse_mask_emb=True)
    assert "the student has no pretrained mask embedding" in caplog.text


def test_a_student_file_carries_its_teachers_mask_emb_to_fine_tuning(ckpts, tmp_path):
    """The authors fine-tune a student inside HuBERT's checkpoint, so masked frames get HuBERT's
    mask_emb: distillation keeps the teacher's in student.pt where the widths agree, and
    reuse_mask_emb starts the time masks from it."""
    from espnet_distill.student.export import load_student
    from espnet_distill.train.distill import with_teacher_mask_emb

    student, meta = load_student(ckpts / "student.pt")
    assert with_teacher_mask_emb(meta, torch.randn(32), 24) == meta  # another width: nothing kept
    kept = torch.randn(24)
    save_student(tmp_path / "s.pt", student, with_teacher_mask_emb(meta, kept, 24))
    fe = DistilledFrontend(str(tmp_path / "s.pt"), mask_time_prob=0.5, reuse_mask_emb=True)
    assert torch.equal(fe.masking.mask_emb.detach(), kept)
    assert "teacher_mask_emb" not in dict(fe.named_parameters()) | dict(fe.named_buffers())  # not a weight


def test_a_pruned_student_is_a_frontend_like_the_others(ckpts, tmp_path):
    """A pruned student (per-layer sizes, a layer without attention) fine-tunes as any student."""
    from espnet_distill.student.pruning import PruneConfig, attach_gates, prune_student
    from espnet_distill.teacher.checkpoints import load_hubert

    teacher, _ = load_hubert(ckpts / "teacher.pt")
    student, _ = build_student({"student": {"disc_head": None}, "prune": {"target_params": 30000, "steps": 1}},
                               HubertTeacher(teacher))
    gates = attach_gates(student, PruneConfig(target_params=30000, steps=1))
    with torch.no_grad():
        gates.groups["attn1"].log_alpha.fill_(-10)
    small = prune_student(student.eval())
    assert small.cfg.layer_heads[1] == 0
    save_student(tmp_path / "pruned.pt", small)
    fe = DistilledFrontend(str(tmp_path / "pruned.pt"), layer="last")
    fe.train()
    feats, lens = fe(*wav())
    assert feats.shape == (2, 24, 32)
    feats.sum().backward()
    assert fe.upstream.encoder.layers[0].fc1.weight.grad is not None
