"""WavLM teachers (the gated relative position bias, unilm and torchaudio parameter names): our
modules against torchaudio's ``wavlm_model`` and s3prl's WavLM on random weights."""
from __future__ import annotations

import pytest
import torch
import torchaudio

from espnet_distill.nn.hubert import relative_buckets
from espnet_distill.teacher.checkpoints import load_hubert
from espnet_distill.teacher.teacher import TeacherError, build_teacher

CONV = [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]]


def tiny_wavlm(layer_norm_first: bool = False, max_distance: int = 40) -> torch.nn.Module:
    torch.manual_seed(0)
    m = torchaudio.models.wavlm_model(
        extractor_mode="layer_norm" if layer_norm_first else "group_norm",
        extractor_conv_layer_config=[tuple(c) for c in CONV], extractor_conv_bias=layer_norm_first,
        encoder_embed_dim=48, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4,
        encoder_num_layers=3, encoder_num_heads=4, encoder_num_buckets=16, encoder_max_distance=max_distance,
        encoder_attention_dropout=0.0, encoder_ff_interm_features=96, encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0, encoder_layer_norm_first=layer_norm_first, encoder_layer_drop=0.0, aux_num_out=None)
    with torch.no_grad():  # a random, asymmetric model: gates and bias table away from their init
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def unilm_checkpoint(model, path, layer_norm_first: bool = False, max_distance: int = 40) -> None:
    """The released WavLM layout: {"cfg": the model config, "model": unilm-named weights}."""
    ours, _ = load_hubert_from_torchaudio(model, path.parent / "ta.pt", max_distance, layer_norm_first)
    cfg = {"extractor_mode": "layer_norm" if layer_norm_first else "default", "encoder_layers": 3,
           "encoder_embed_dim": 48, "encoder_ffn_embed_dim": 96, "encoder_attention_heads": 4,
           "activation_fn": "gelu", "layer_norm_first": layer_norm_first,
           "conv_feature_layers": str([tuple(c) for c in CONV]), "conv_bias": layer_norm_first, "conv_pos": 16,
           "conv_pos_groups": 4, "relative_position_embedding": True, "num_buckets": 16,
           "max_distance": max_distance, "gru_rel_pos": True, "normalize": False, "feature_grad_mult": 1.0,
           "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "dropout_input": 0.0,
           "dropout_features": 0.0, "encoder_layerdrop": 0.0, "mask_prob": 0.0, "mask_channel_prob": 0.0}
    torch.save({"cfg": cfg, "model": ours.state_dict()}, path)


def load_hubert_from_torchaudio(model, path, max_distance: int = 40, layer_norm_first: bool = False):
    """A bare state dict: what its shapes cannot tell comes from torchaudio's factory arguments."""
    torch.save(model.state_dict(), path)
    return load_hubert(path, hints={"encoder_max_distance": max_distance, "encoder_layer_norm_first": layer_norm_first})


def torchaudio_layers(model, wav, lengths=None) -> list[torch.Tensor]:
    with torch.no_grad():
        return model.extract_features(wav, lengths)[0]


@pytest.mark.parametrize("layer_norm_first", [False, True])
def test_wavlm_from_torchaudio_matches_torchaudio(tmp_path, layer_norm_first):
    ta = tiny_wavlm(layer_norm_first)
    ours, meta = load_hubert_from_torchaudio(ta, tmp_path / "ta.pt", layer_norm_first=layer_norm_first)
    assert meta["format"] == "torchaudio_hubert"
    assert ours.cfg.relative_position_embedding
    assert (ours.cfg.num_buckets, ours.cfg.max_distance, ours.cfg.num_heads) == (16, 40, 4)
    assert ours.cfg.layer_norm_first == layer_norm_first
    torch.manual_seed(1)
    wav = 0.1 * torch.randn(2, 16000)  # 49 frames: offsets beyond max_distance's log buckets too
    ours.eval()
    with torch.no_grad():
        hidden, mask = ours(wav, torch.tensor([16000, 16000]))
    theirs = torchaudio_layers(ta, wav)
    last = len(theirs) - (1 if layer_norm_first else 0)  # torchaudio's last entry: before the final LayerNorm
    for i in range(last):
        torch.testing.assert_close(hidden[i + 1], theirs[i], atol=2e-5, rtol=1e-4)
    assert mask.all()


def test_relative_buckets_are_wavlms():
    """Both halves, the exact offsets, the log-spaced ones and the clamp at max_distance."""
    ta = tiny_wavlm(max_distance=40).encoder.transformer.layers[0].attention
    pos = torch.arange(60)
    theirs = ta._relative_positions_bucket(pos[None, :] - pos[:, None], bidirectional=True)
    assert torch.equal(relative_buckets(60, 16, 40), theirs)


def test_unilm_checkpoint_through_our_loader_and_s3prl(tmp_path):
    """A released-layout WavLM file reads as ours and as s3prl's ``wavlm_local``: same hidden states;
    stage 2 can rebuild s3prl's WavLM as our checkpoint."""
    ta = tiny_wavlm()
    unilm_checkpoint(ta, tmp_path / "wavlm.pt")
    local = build_teacher({"backend": "local", "path": str(tmp_path / "wavlm.pt")})
    assert local.to_hubert().cfg.rel_pos == {"num_buckets": 16, "max_distance": 40, "gated": True}
    assert not local.has_codebook
    s3prl = build_teacher({"backend": "s3prl", "name": "wavlm_local", "path_or_url": str(tmp_path / "wavlm.pt")})
    torch.manual_seed(2)
    wav, n = 0.1 * torch.randn(2, 12000), torch.tensor([12000, 12000])
    ours, theirs = local(wav, n), s3prl(wav, n)
    assert len(ours.hidden) == len(theirs.hidden) == 4
    for a, b in zip(ours.hidden, theirs.hidden):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    rebuilt = s3prl.to_hubert()
    assert rebuilt.cfg.relative_position_embedding


def test_wavlm_padding_does_not_change_an_utterance(tmp_path):
    ta = tiny_wavlm()
    ours, _ = load_hubert_from_torchaudio(ta, tmp_path / "ta.pt")
    ours.eval()
    torch.manual_seed(3)
    wav = 0.1 * torch.randn(2, 12000)
    with torch.no_grad():
        alone, _ = ours(wav[:1, :8000], torch.tensor([8000]))
        batch, mask = ours(wav, torch.tensor([8000, 12000]))
    n = int(mask[0].sum())
    for a, b in zip(alone, batch):
        torch.testing.assert_close(a[0], b[0, :n], atol=2e-5, rtol=1e-4)


def test_wavlm_teacher_turns_l_disc_off_in_one_line(tmp_path, caplog):
    from espnet_distill.train.distill import l_disc_weight

    unilm_checkpoint(tiny_wavlm(), tmp_path / "wavlm.pt")
    teacher = build_teacher({"backend": "local", "path": str(tmp_path / "wavlm.pt")})
    with caplog.at_level("WARNING"):
        assert l_disc_weight(0.4, teacher) == 0.0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "has no codebook head" in warning
    assert "\n" not in warning


WAVLM_BASE_PLUS_URL = "https://huggingface.co/s3prl/converted_ckpts/resolve/main/wavlm_base_plus.pt"


@pytest.fixture
def s3prl_cache(tmp_path):
    """s3prl's download folder in tmp_path; the path s3prl gives to WavLM Base+'s URL there."""
    import hashlib

    from s3prl.util import download

    before = download.get_dir()
    download.set_dir(tmp_path / "s3prl_cache")
    path = download.get_dir() / f"{hashlib.sha256(WAVLM_BASE_PLUS_URL.encode()).hexdigest()}.wavlm_base_plus.pt"
    yield path
    download.set_dir(before)


def test_wavlm_base_plus_by_name_reads_weights_only(tmp_path, s3prl_cache, capsys):
    """``name: wavlm_base_plus`` with its file already downloaded (a tiny WavLM in its place here):
    it teaches and rebuilds as ours; a file of pickled objects there is refused, never run."""
    unilm_checkpoint(tiny_wavlm(), s3prl_cache)
    teacher = build_teacher({"backend": "s3prl", "name": "wavlm_base_plus"})
    assert teacher.num_layers == 3
    assert not teacher.has_codebook
    assert teacher.to_hubert().cfg.relative_position_embedding

    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    torch.save({"cfg": {}, "model": Payload()}, s3prl_cache)
    with pytest.raises(TeacherError, match="holds pickled Python objects"):
        build_teacher({"backend": "s3prl", "name": "wavlm_base_plus"})
    assert "payload ran" not in capsys.readouterr().out
