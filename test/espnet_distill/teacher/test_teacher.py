from __future__ import annotations

import pytest
import torch
import torchaudio
import yaml
from helpers import FAIRSEQ_LAYOUTS, released_fairseq_file

from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.teacher.checkpoints import (
    convert_to_ours,
    fairseq_model_cfg,
    load_hubert,
    save_hubert,
    save_s3prl_hubert_local,
)
from espnet_distill.teacher.teacher import TeacherError, build_teacher

CONV = [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]]
TINY = dict(conv_layers=CONV, embed_dim=48, ffn_dim=96, num_layers=2, num_heads=4, conv_pos=16, conv_pos_groups=4,
            final_dim=16, num_classes=12, dropout=0.0, attention_dropout=0.0)


def tiny_torchaudio_model():
    torch.manual_seed(0)
    m = torchaudio.models.hubert_pretrain_model(
        extractor_mode="group_norm", extractor_conv_layer_config=[tuple(c) for c in CONV], extractor_conv_bias=False,
        encoder_embed_dim=48, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4,
        encoder_num_layers=2, encoder_num_heads=4, encoder_attention_dropout=0.0, encoder_ff_interm_features=96,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False, encoder_layer_drop=0.0,
        mask_prob=0.8, mask_selection="static", mask_other=0.0, mask_length=10, no_mask_overlap=False,
        mask_min_space=1, mask_channel_prob=0.0, mask_channel_selection="static", mask_channel_other=0.0,
        mask_channel_length=10, no_mask_channel_overlap=False, mask_channel_min_space=1, skip_masked=False,
        skip_nomask=False, num_classes=12, final_dim=16, feature_grad_mult=None)
    # make the random weights less symmetric than torchaudio's init
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="module")
def ta_model():
    return tiny_torchaudio_model()


@pytest.fixture
def wav():
    torch.manual_seed(1)
    return torch.randn(2, 8000) * 0.1, torch.tensor([8000, 8000])


def test_torchaudio_format_matches_torchaudio_forward(tmp_path, ta_model, wav):
    torch.save(ta_model.state_dict(), tmp_path / "ta.pt")  # a bare state dict: heads come from the config
    teacher = build_teacher({"backend": "local", "path": str(tmp_path / "ta.pt"),
                             "torchaudio_config": {"encoder_num_heads": 4}})
    x, n = wav
    out = teacher(x, n)
    assert len(out.hidden) == 3
    assert out.hidden[0].shape == (2, 24, 48)
    assert out.mask.all()
    assert out.mask.shape == (2, 24)
    with torch.no_grad():
        ref_layers, _ = ta_model.wav2vec2.extract_features(x, n)
        feats, _ = ta_model.wav2vec2.feature_extractor(x, n)
        proj = ta_model.wav2vec2.encoder.feature_projection(feats)
        ref0 = ta_model.wav2vec2.encoder.transformer._preprocess(proj)
        ref_logits = ta_model.logit_generator.final_proj(ref_layers[-1])
        ref_logits = torch.nn.functional.cosine_similarity(
            ref_logits.unsqueeze(2), ta_model.logit_generator.label_embeddings[None, None], dim=-1) / 0.1
    torch.testing.assert_close(out.hidden[0], ref0, atol=1e-5, rtol=1e-4)
    for ours, ref in zip(out.hidden[1:], ref_layers):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
    assert out.logits.shape == (2, 24, 12)
    torch.testing.assert_close(out.logits, ref_logits, atol=1e-4, rtol=1e-4)


def test_same_weights_through_every_format(tmp_path, ta_model, wav):
    torch.save({"state_dict": ta_model.state_dict(), "config": {"encoder_num_heads": 4}}, tmp_path / "ta.pt")
    base, _ = load_hubert(tmp_path / "ta.pt")
    save_s3prl_hubert_local(tmp_path / "s3prl.pt", base)
    save_hubert(tmp_path / "ours.pt", base)
    torch.save({"cfg": {"model": fairseq_model_cfg(base.cfg), "task": {"normalize": False}},
                "model": base.state_dict()}, tmp_path / "fairseq.pt")
    espnet_dir = tmp_path / "espnet"
    espnet_dir.mkdir()
    torch.save({"encoder.hubert_pretrain_model." + k: v for k, v in ta_model.state_dict().items()},
               espnet_dir / "model.pth")
    (espnet_dir / "config.yaml").write_text(yaml.safe_dump({"encoder_conf": {"encoder_num_heads": 4}}))
    convert_to_ours(tmp_path / "fairseq.pt", tmp_path / "from_fairseq.pt")

    x, n = wav
    ref = build_teacher({"path": str(tmp_path / "ta.pt")})(x, n)
    for path, fmt in [("s3prl.pt", "hubert_local"), ("ours.pt", "espnet_distill"), ("fairseq.pt", "fairseq"),
                      ("espnet/model.pth", "espnet_hubert_local"), ("from_fairseq.pt", "espnet_distill")]:
        model, meta = load_hubert(tmp_path / path)
        assert meta["format"] == fmt, path
        out = build_teacher({"path": str(tmp_path / path)})(x, n)
        for a, b in zip(out.hidden, ref.hidden):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("untie", [False, True], ids=["tied", "untie_final_proj"])
def test_s3prl_backend_loads_our_export(tmp_path, ta_model, wav, untie):
    """s3prl's own HuBERT code, given our s3prl-format export, gives our hidden states; with
    ``untie_final_proj`` (as s3prl's converted ``hubert_base`` has it) both backends read it and
    the s3prl one rebuilds as ours (stage 2's export)."""
    base = HubertModel(HubertConfig(**TINY)).eval()
    save_s3prl_hubert_local(tmp_path / "s3prl.pt", base)
    if untie:
        ckpt = torch.load(tmp_path / "s3prl.pt", weights_only=True)
        ckpt["model_cfg"]["untie_final_proj"] = True
        torch.save(ckpt, tmp_path / "s3prl.pt")
    x, n = wav
    ours = build_teacher({"path": str(tmp_path / "s3prl.pt")})(x, n)
    theirs = build_teacher({"backend": "s3prl", "name": "hubert_local", "path_or_url": str(tmp_path / "s3prl.pt")})
    assert _arch(theirs.to_hubert().cfg) == _arch(base.cfg)
    assert theirs.has_codebook
    assert theirs.num_layers == 2
    assert theirs.dim == 48
    out = theirs(x, n)
    assert len(out.hidden) == len(ours.hidden)
    for a, b in zip(out.hidden, ours.hidden):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits, ours.logits, atol=1e-4, rtol=0)


def test_teacher_info_converts_a_checkpoint_and_names_it_in_a_yaml(tmp_path, ta_model, caplog):
    """A released-fairseq-format file to ours (teacher_info --checkpoint --export) and the teacher
    YAML that names the export; a file that is not a HuBERT is one line, nothing written."""
    import yaml

    from espnet_distill.bin import teacher_info

    base = HubertModel(HubertConfig(**TINY)).eval()
    torch.save({"cfg": {"model": fairseq_model_cfg(base.cfg), "task": {"normalize": False}},
                "model": base.state_dict()},
               tmp_path / "fairseq.pt")
    assert teacher_info.main(["--checkpoint", str(tmp_path / "fairseq.pt"), "--export", str(tmp_path / "ours.pt"),
                              "--write-yaml", str(tmp_path / "teacher.yaml")]) == 0
    model, meta = load_hubert(tmp_path / "ours.pt")
    assert meta["format"] == "espnet_distill"
    assert model.has_codebook
    assert model.cfg.num_classes == 12
    assert yaml.safe_load((tmp_path / "teacher.yaml").read_text()) == {"backend": "local",
                                                                     "path": str(tmp_path / "ours.pt")}
    torch.save({"cfg": {"model": {}, "task": {}}, "model": {"final_proj.weight": torch.zeros(2, 2)}},
               tmp_path / "bad.pt")
    assert teacher_info.main(["--checkpoint", str(tmp_path / "bad.pt"), "--export", str(tmp_path / "x.pt")]) == 1
    assert "missing keys ['feature_extractor.conv_layers.0.0.weight'" in caplog.text
    assert not (tmp_path / "x.pt").exists()


def test_padding_does_not_change_an_utterance():
    model = HubertModel(HubertConfig(**TINY)).eval()
    teacher = build_teacher.__globals__["HubertTeacher"](model)
    torch.manual_seed(2)
    a = torch.randn(1, 6000) * 0.1
    batch = torch.zeros(2, 9000)
    batch[0, :6000] = a[0]
    batch[1] = torch.randn(9000) * 0.1
    alone = teacher(a, torch.tensor([6000]))
    both = teacher(batch, torch.tensor([6000, 9000]))
    t = alone.mask.sum()
    assert int(both.mask[0].sum()) == t == (6000 - 400) // 320 + 1
    for h1, h2 in zip(alone.hidden, both.hidden):
        torch.testing.assert_close(h1[0, :t], h2[0, :t], atol=1e-5, rtol=0)


def test_teacher_is_frozen_and_in_eval(tmp_path):
    model = HubertModel(HubertConfig(**TINY, layerdrop=0.5))
    save_hubert(tmp_path / "t.pt", model)
    t = build_teacher({"path": str(tmp_path / "t.pt")})
    t.train()
    assert not t.training
    assert not t.model.training
    assert t.model.encoder.layerdrop == 0
    assert not any(p.requires_grad for p in t.parameters())
    out = t(torch.randn(1, 4000, requires_grad=True), torch.tensor([4000]))
    assert not out.hidden[-1].requires_grad


def test_bad_checkpoints_get_clear_errors(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd.pt: unknown checkpoint format .*supported"):
        load_hubert(tmp_path / "odd.pt")
    torch.save({"task_cfg": {}, "model_cfg": {}, "model_weight": {}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError,
                       match=r"partial.pt \(s3prl hubert_local\): missing keys \['dictionaries_symbols'\]"):
        load_hubert(tmp_path / "partial.pt")
    model = HubertModel(HubertConfig(**TINY))
    sd = model.state_dict()
    del sd["encoder.layers.1.fc2.weight"]
    torch.save({"format": "espnet_distill.hubert", "config": model.cfg.to_dict(), "state_dict": sd}, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"missing weights \['encoder.layers.1.fc2.weight'\]"):
        load_hubert(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_hubert(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a torch checkpoint, or corrupted"):
        load_hubert(tmp_path / "junk.pt")
    save_hubert(tmp_path / "whole.pt", model)
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt: truncated or corrupted") as e:
        load_hubert(tmp_path / "cut.pt")
    assert "weights_only=False" not in str(e.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt: empty file"):
        load_hubert(tmp_path / "empty.pt")


class _RunsCode:
    """A pickle payload: unpickling it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["distiller_local", "hubert_local", "wav2vec2_local"])
def test_s3prl_path_is_never_unpickled(tmp_path, name):
    marker = tmp_path / "payload_ran"
    torch.save({"Config": {}, "model_weight": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises((TeacherError, CheckpointError), match=r"evil.pt: holds a pickled Python object \([\w.]*open\)"):
        build_teacher({"backend": "s3prl", "name": name, "path_or_url": str(tmp_path / "evil.pt")})
    assert not marker.exists()


def test_weights_only_guard_overrides_callers(tmp_path):
    """s3prl's loaders pass weights_only=False; inside the guard they still read weights only."""
    import pickle

    from espnet_distill.teacher.teacher import weights_only_torch_load

    marker = tmp_path / "payload_ran"
    torch.save({"x": _RunsCode(marker)}, tmp_path / "evil.pt")
    with weights_only_torch_load(), pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "evil.pt", weights_only=False)
    assert not marker.exists()
    assert torch.load is torch.serialization.load  # restored


@pytest.mark.parametrize("layer_norm_first,mode", [(False, "default"), (True, "layer_norm")])
def test_s3prl_hubert_upstream_exports_as_ours(tmp_path, wav, layer_norm_first, mode):
    """Stage 2 writes an s3prl HuBERT teacher as our checkpoint: same config, same hidden states."""
    cfg = HubertConfig(**dict(TINY, layer_norm_first=layer_norm_first, extractor_mode=mode, logit_temp=0.05))
    base = HubertModel(cfg).eval()
    save_s3prl_hubert_local(tmp_path / "s3prl.pt", base)
    teacher = build_teacher({"backend": "s3prl", "name": "hubert_local", "path_or_url": str(tmp_path / "s3prl.pt")})
    model = teacher.to_hubert()
    assert _arch(model.cfg) == _arch(cfg)
    x, n = wav
    save_hubert(tmp_path / "ours.pt", model)
    ours = build_teacher({"path": str(tmp_path / "ours.pt")})(x, n)
    theirs = teacher(x, n)
    for a, b in zip(ours.hidden, theirs.hidden):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_teacher_info_exports_local_and_s3prl_teachers(tmp_path):
    import json
    import subprocess
    import sys

    base = HubertModel(HubertConfig(**TINY)).eval()
    save_s3prl_hubert_local(tmp_path / "s3prl.pt", base)
    for i, conf in enumerate([{"backend": "local", "path": str(tmp_path / "s3prl.pt")},
                              {"backend": "s3prl", "name": "hubert_local", "path_or_url": str(tmp_path / "s3prl.pt")}]):
        (tmp_path / f"t{i}.yaml").write_text(yaml.safe_dump(conf))
        r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.teacher_info", "--config",
                            str(tmp_path / f"t{i}.yaml"),
                            "--json", str(tmp_path / f"info{i}.json"), "--export", str(tmp_path / f"out{i}.pt")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        info = json.loads((tmp_path / f"info{i}.json").read_text())
        assert info["checkpoint"] == str(tmp_path / f"out{i}.pt")
        assert info["num_layers"] == 2
        model, meta = load_hubert(tmp_path / f"out{i}.pt")
        assert meta["format"] == "espnet_distill"
        assert _arch(model.cfg) == _arch(base.cfg)
        for a, b in zip(model.state_dict().values(), base.state_dict().values()):
            assert torch.equal(a, b)


def _arch(cfg: HubertConfig) -> dict:
    """The architecture fields of a config (dropout rates do not change a frozen teacher)."""
    return {k: v for k, v in cfg.to_dict().items() if "dropout" not in k and k != "layerdrop"}


@pytest.mark.parametrize("layout", FAIRSEQ_LAYOUTS)
@pytest.mark.parametrize("untie", [False, True], ids=["tied", "untie_final_proj"])
def test_released_fairseq_checkpoint_in_every_layout(tmp_path, wav, layout, untie):
    """Every layout of fairseq's (``cfg`` a plain dict or an omegaconf DictConfig pickled by
    omegaconf; only an ``argparse.Namespace`` ``args``), tied or untied final_proj (one label set: the
    same Linear), is read weights-only, without omegaconf's or fairseq's code, to the same model."""
    cfg = HubertConfig(**dict(TINY, num_heads=6))  # 48 / 64 would guess 1 head: the count must come from the file
    base = HubertModel(cfg).eval()
    released_fairseq_file(tmp_path / "hubert_base_ls960.pt", base, [str(i) for i in range(8)], layout, untie)
    raw = (tmp_path / "hubert_base_ls960.pt").read_bytes()
    assert (b"omegaconf.dictconfig" in raw) == (layout == "cfg_omegaconf")
    assert (b"argparse" in raw) == layout.startswith("args")
    assert b"fairseq.data.dictionary" in raw
    model, meta = load_hubert(tmp_path / "hubert_base_ls960.pt")
    assert meta["format"] == "fairseq"
    assert meta["layout"] == {"cfg_dict": "fairseq cfg (dict)", "cfg_omegaconf": "fairseq cfg (omegaconf DictConfig)",
                              "args_namespace": "fairseq args (argparse.Namespace)",
                              "args_cfg_none": "fairseq args (argparse.Namespace)"}[layout]
    assert model.cfg.num_heads == 6
    assert model.cfg == cfg
    assert meta["dictionaries_symbols"][0][4:] == [str(i) for i in range(8)]
    x, n = wav
    with torch.no_grad():
        a, _ = model.eval()(x, n)
        b, _ = base(x, n)
    for ha, hb in zip(a, b):
        assert torch.equal(ha, hb)


def test_untied_final_proj_of_two_label_sets_is_refused_in_one_line(tmp_path):
    """fairseq's untied final_proj is final_dim x (label sets) wide; one codebook of two is not a teacher."""
    base = HubertModel(HubertConfig(**TINY))
    state = base.state_dict()
    state["final_proj.weight"] = torch.cat([state["final_proj.weight"]] * 2)
    state["final_proj.bias"] = torch.cat([state["final_proj.bias"]] * 2)
    cfg = dict(fairseq_model_cfg(base.cfg), untie_final_proj=True)
    torch.save({"cfg": {"model": cfg, "task": {"normalize": False}}, "model": state}, tmp_path / "two.pt")
    with pytest.raises(CheckpointError, match=r"two.pt: untie_final_proj with 2 label sets \(final_proj 32 wide\)"):
        load_hubert(tmp_path / "two.pt")


def test_a_namespace_carrying_code_is_refused(tmp_path):
    """``argparse.Namespace`` is read as attributes only: a payload among them is refused, and never runs."""
    import argparse

    marker = tmp_path / "payload_ran"
    base = HubertModel(HubertConfig(**TINY))
    args = argparse.Namespace(**fairseq_model_cfg(base.cfg), normalize=False, evil=_RunsCode(marker))
    torch.save({"args": args, "model": base.state_dict()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil.pt: holds a pickled Python object \([\w.]*open\)"):
        load_hubert(tmp_path / "evil.pt")
    assert not marker.exists()


def test_unknown_s3prl_name_lists_close_matches():
    with pytest.raises(TeacherError, match=r"unknown s3prl upstream 'hubert_bsae'; close matches: \[.*'hubert_base'"):
        build_teacher({"backend": "s3prl", "name": "hubert_bsae"})


def test_codebook_required_and_short_audio(tmp_path):
    model = HubertModel(HubertConfig(**dict(TINY, num_classes=0)))
    save_hubert(tmp_path / "t.pt", model)
    t = build_teacher({"path": str(tmp_path / "t.pt")})
    assert not t.has_codebook
    assert t(torch.randn(1, 1000), torch.tensor([1000])).logits is None
    with pytest.raises(TeacherError, match=r"utterance 'u2' has 300 samples .* receptive field of 400"):
        t(torch.randn(2, 1000), torch.tensor([1000, 300]), utt_ids=["u1", "u2"])


def test_omegaconf_cfg_carrying_code_is_refused(tmp_path):
    """The omegaconf stand-ins only take attributes: a payload inside a DictConfig is still refused,
    and nothing runs."""
    from omegaconf import OmegaConf

    marker = tmp_path / "payload_ran"
    cfg = OmegaConf.create({"model": {"_name": "hubert"}, "task": {"normalize": False}})
    cfg.__dict__["_content"]["evil"] = _RunsCode(marker)  # past omegaconf's own value checks
    torch.save({"args": None, "cfg": cfg, "model": HubertModel(HubertConfig(**TINY)).state_dict()}, tmp_path / "f.pt")
    with pytest.raises(CheckpointError, match=r"f.pt: holds a pickled Python object \([\w.]*open\)"):
        load_hubert(tmp_path / "f.pt")
    assert not marker.exists()


def test_s3prl_path_or_url_takes_a_file_url_and_names_other_schemes(tmp_path):
    from espnet_distill.teacher.teacher import TeacherError, local_or_http

    base = HubertModel(HubertConfig(**TINY)).eval()
    save_s3prl_hubert_local(tmp_path / "s3prl.pt", base)
    teacher = build_teacher({"backend": "s3prl", "name": "hubert_local", "path_or_url": f"file://{tmp_path}/s3prl.pt"})
    assert teacher.num_layers == 2
    assert local_or_http("https://host/x.pt") == "https://host/x.pt"
    for bad, why in (("ftp://host/x.pt", "scheme 'ftp' is not supported"), ("file://other/x.pt", "of another host")):
        with pytest.raises(TeacherError, match=why):
            local_or_http(bad)
