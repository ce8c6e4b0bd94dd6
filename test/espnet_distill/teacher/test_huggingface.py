"""Hugging Face HuBERT / WavLM folders (transformers' own classes save them here, on random weights):
read without transformers, the hidden states equal transformers' forward."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny_hf

from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.teacher.checkpoints import load_hubert
from espnet_distill.teacher.teacher import build_teacher


def assert_same_hidden(ours, model, wav: torch.Tensor) -> None:
    """Every hidden state to 1e-5. Ours ends, as fairseq's, with the encoder's output (in the
    layer-norm-first layout after its final LayerNorm): transformers' ``last_hidden_state``."""
    with torch.no_grad():
        out = model(wav, output_hidden_states=True)
        mine, _ = ours.eval()(wav, torch.tensor([wav.shape[1]] * wav.shape[0]))
    theirs = list(out.hidden_states[:-1]) + [out.last_hidden_state]
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.fixture
def wav():
    torch.manual_seed(1)
    return torch.randn(1, 8000) * 0.1


@pytest.mark.parametrize("stable", [False, True], ids=["base_layout", "large_layout"])
@pytest.mark.parametrize("kind", ["hubert", "wavlm"])
def test_a_hub_folder_gives_transformers_hidden_states(tmp_path, wav, kind, stable):
    model = tiny_hf(kind, stable)
    model.save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    ours, meta = load_hubert(tmp_path / "hf")
    assert meta["format"] == "huggingface"
    assert meta["layout"] == f"Hugging Face {kind} (model.safetensors + config.json)"
    assert ours.cfg.layer_norm_first == stable
    assert ours.cfg.relative_position_embedding == (kind == "wavlm")
    assert not ours.has_codebook
    assert_same_hidden(ours, model, wav)


def test_pytorch_model_bin_shards_and_ctc_models(tmp_path, wav):
    """``pytorch_model.bin`` (read weights-only), a file path inside the folder, the shards of an
    index, and the encoder of a HubertForCTC (its lm_head left out) read to the same model."""
    ctc = tiny_hf(cls_name="HubertForCTC")
    (tmp_path / "ctc").mkdir()
    torch.save(ctc.state_dict(), tmp_path / "ctc" / "pytorch_model.bin")  # as transformers < 5 saved by default
    ctc.config.to_json_file(tmp_path / "ctc" / "config.json")
    for path in (tmp_path / "ctc", tmp_path / "ctc" / "pytorch_model.bin"):
        ours, meta = load_hubert(path)
        assert meta["layout"] == "Hugging Face hubert (pytorch_model.bin + config.json)"
        assert_same_hidden(ours, ctc.hubert, wav)
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in tiny_hf().state_dict().items()}
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    (tmp_path / "sharded").mkdir()
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, tmp_path / "sharded" / shard)
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (tmp_path / "sharded" / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    tiny_hf().config.to_json_file(tmp_path / "sharded" / "config.json")
    sharded, _ = load_hubert(tmp_path / "sharded")
    assert_same_hidden(sharded, tiny_hf(), wav)


def test_normalize_comes_from_the_feature_extractor_or_the_hint(tmp_path):
    tiny_hf().save_pretrained(tmp_path / "hf")
    assert not load_hubert(tmp_path / "hf")[0].cfg.normalize
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    model, meta = load_hubert(tmp_path / "hf")
    assert model.cfg.normalize
    assert meta["normalize_from"] == "preprocessor_config.json's do_normalize"
    assert not load_hubert(tmp_path / "hf", hints={"normalize": False})[0].cfg.normalize


def test_a_hub_folder_as_a_teacher_has_no_codebook(tmp_path, wav):
    tiny_hf("wavlm").save_pretrained(tmp_path / "hf")
    teacher = build_teacher({"backend": "local", "path": str(tmp_path / "hf")})
    assert not teacher.has_codebook
    assert teacher.layout == "Hugging Face wavlm (model.safetensors + config.json)"
    out = teacher(wav, torch.tensor([8000]))
    assert out.logits is None
    assert len(out.hidden) == 4


def test_broken_folders_are_one_line_each(tmp_path):
    model = tiny_hf()
    model.save_pretrained(tmp_path / "hf")
    conf = json.loads((tmp_path / "hf" / "config.json").read_text())
    cases = {}
    (tmp_path / "no_config").mkdir()
    cases["no_config"] = "a folder without config.json"
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text(json.dumps(conf))
    cases["no_weights"] = "a Hugging Face folder without weights"
    (tmp_path / "w2v").mkdir()
    (tmp_path / "w2v" / "config.json").write_text(json.dumps(dict(conf, model_type="wav2vec2")))
    (tmp_path / "w2v" / "model.safetensors").write_bytes((tmp_path / "hf" / "model.safetensors").read_bytes())
    cases["w2v"] = "model_type 'wav2vec2' is not a teacher we read"
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "config.json").write_text(json.dumps(conf))
    (tmp_path / "cut" / "model.safetensors").write_bytes((tmp_path / "hf" / "model.safetensors").read_bytes()[:500])
    cases["cut"] = "model.safetensors: not a complete .safetensors file"
    (tmp_path / "nokey").mkdir()
    (tmp_path / "nokey" / "config.json").write_text(json.dumps({k: v for k, v in conf.items() if k != "hidden_size"}))
    (tmp_path / "nokey" / "model.safetensors").write_bytes((tmp_path / "hf" / "model.safetensors").read_bytes())
    cases["nokey"] = "config.json lacks 'hidden_size'"
    for name, why in cases.items():
        with pytest.raises(CheckpointError, match=why) as e:
            load_hubert(tmp_path / name)
        assert str(tmp_path / name) in str(e.value)
        assert "\n" not in str(e.value)
    alone = tmp_path / "alone" / "pytorch_model.bin"
    alone.parent.mkdir()
    torch.save(model.state_dict(), alone)
    with pytest.raises(CheckpointError, match=r"need the config.json of their folder"):
        load_hubert(alone)
