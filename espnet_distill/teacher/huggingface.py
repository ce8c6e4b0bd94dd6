"""Hugging Face HuBERT and WavLM checkpoints (transformers' ``HubertModel`` / ``WavLMModel``, and
the encoders inside ``*ForCTC`` and ``*ForSequenceClassification``) as our config and weights.

A Hub folder holds ``config.json`` and its weights: ``model.safetensors``, ``pytorch_model.bin``, or
shards named by ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``. Whether the
waveform is normalised is the feature extractor's ``do_normalize`` (``preprocessor_config.json``).
transformers is not imported: the configs are read as JSON, the weights with safetensors or
``torch.load(weights_only=True)``. The keys are renamed to torchaudio's (``to_torchaudio_names``),
which teacher/checkpoints.py renames on to fairseq's. Hugging Face keeps no pretraining head
(no ``final_proj``, no codebook): such a teacher gives no L_disc targets.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from espnet_distill.checkpoint_io import CheckpointError, read_safetensors, safe_load

logger = logging.getLogger(__name__)

MODEL_TYPES = ("hubert", "wavlm")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # transformers' own order of preference
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_ENCODER_PREFIXES = ("hubert.", "wavlm.")  # the encoder inside HubertForCTC, WavLMForCTC, ...
_HEAD_PREFIXES = ("lm_head.", "projector.", "classifier.", "layer_weights")

# Hugging Face prefix -> torchaudio's (teacher/checkpoints.py's _TA_RULES take it from there)
_TO_TORCHAUDIO = [
    ("feature_extractor.", "wav2vec2.feature_extractor."),
    ("feature_projection.", "wav2vec2.encoder.feature_projection."),
    ("encoder.pos_conv_embed.", "wav2vec2.encoder.transformer.pos_conv_embed."),
    ("encoder.layer_norm.", "wav2vec2.encoder.transformer.layer_norm."),
    ("encoder.layers.", "wav2vec2.encoder.transformer.layers."),
    ("masked_spec_embed", "mask_generator.mask_embedding"),
]
_MARKERS = ("feature_projection.", "encoder.pos_conv_embed.")  # keys only Hugging Face's layout has


def _strip_encoder_prefix(key: str) -> str:
    for prefix in _ENCODER_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def is_hf_state(state: dict) -> bool:
    """Whether a state dict has Hugging Face's HuBERT/WavLM key names."""
    return any(_strip_encoder_prefix(str(k)).startswith(_MARKERS) for k in state)


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def weights_file(folder: Path) -> Path:
    """The weights of a Hub folder: the first of WEIGHT_FILES, else the index of a sharded one."""
    for name in WEIGHT_FILES + INDEX_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: a Hugging Face folder without weights "
                          f"(none of {list(WEIGHT_FILES + INDEX_FILES)})")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``.bin`` file, or of every shard an index names."""
    if path.name in INDEX_FILES:
        try:
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: not a shard index (a JSON object with a weight_map): {e}") from None
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(read_weights(path.parent / shard))
        return state
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return safe_load(path)


def read_json(path: Path) -> dict:
    try:
        conf = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(conf, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(conf).__name__}")
    return conf


def config_from_hf(conf: dict, what: str, normalize: bool) -> dict:
    """HubertConfig fields of a transformers ``HubertConfig`` / ``WavLMConfig`` (its config.json)."""
    model_type = conf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"{what}: model_type {model_type!r} is not a teacher we read "
                              f"(supported: {list(MODEL_TYPES)})")
    if conf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{what}: hidden_act {conf['hidden_act']!r} is not supported (only gelu)")
    if conf.get("conv_pos_batch_norm"):
        raise CheckpointError(f"{what}: conv_pos_batch_norm (a BatchNorm in the positional convolution) "
                              "is not supported")
    if not conf.get("feat_proj_layer_norm", True):
        raise CheckpointError(f"{what}: feat_proj_layer_norm false (no LayerNorm before the projection) "
                              "is not supported")
    try:
        conv = [[int(d), int(k), int(s)] for d, k, s in zip(conf["conv_dim"], conf["conv_kernel"], conf["conv_stride"],
                                                          strict=True)]
        out = {
            "conv_layers": conv, "conv_bias": bool(conf.get("conv_bias", False)),
            "extractor_mode": {"group": "default", "layer": "layer_norm"}[conf.get("feat_extract_norm", "group")],
            "embed_dim": int(conf["hidden_size"]), "ffn_dim": int(conf["intermediate_size"]),
            "num_layers": int(conf["num_hidden_layers"]), "num_heads": int(conf["num_attention_heads"]),
            "conv_pos": int(conf["num_conv_pos_embeddings"]),
            "conv_pos_groups": int(conf["num_conv_pos_embedding_groups"]),
            "layer_norm_first": bool(conf.get("do_stable_layer_norm", False)),
            "dropout": float(conf.get("hidden_dropout", 0.1)),
            "attention_dropout": float(conf.get("attention_dropout", 0.1)),
            "activation_dropout": float(conf.get("activation_dropout", 0.1)),
            "dropout_input": float(conf.get("feat_proj_dropout", 0.0)),
            "layerdrop": float(conf.get("layerdrop", 0.0)),
            "final_dim": 0, "num_classes": 0, "normalize": normalize,
        }
    except KeyError as e:
        raise CheckpointError(f"{what}: config.json lacks {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{what}: config.json: conv_dim, conv_kernel and conv_stride must be lists of "
                              f"integers of one length, and feat_extract_norm group or layer ({e})") from None
    if model_type == "wavlm":
        out.update(relative_position_embedding=True, num_buckets=int(conf.get("num_buckets", 320)),
                   max_distance=int(conf.get("max_bucket_distance", 800)))
    return out


def normalize_of(folder: Path, hints: dict) -> tuple[bool, str]:
    """Whether the waveform is normalised, and where that was read: the ``normalize`` hint, else
    ``do_normalize`` of preprocessor_config.json, else False (fairseq HuBERT Base's)."""
    if "normalize" in hints:
        return bool(hints["normalize"]), "the normalize hint"
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        return bool(read_json(pre).get("do_normalize", False)), f"{pre.name}'s do_normalize"
    return False, "the default (no preprocessor_config.json)"


def to_torchaudio_names(state: dict, what: str) -> dict[str, torch.Tensor]:
    """Hugging Face key names -> torchaudio's ``Wav2Vec2Model`` ones (``wav2vec2.*``). The encoder
    prefix of ``*ForCTC`` models is dropped, and so are their heads (logged)."""
    out, dropped = {}, []
    for key, value in state.items():
        key = _strip_encoder_prefix(str(key))
        if key.startswith(_HEAD_PREFIXES):
            dropped.append(key)
            continue
        for theirs, ta in _TO_TORCHAUDIO:
            if key.startswith(theirs):
                out[ta + key[len(theirs):]] = value
                break
        else:
            raise CheckpointError(f"{what}: unexpected Hugging Face key {key!r}")
    if dropped:
        logger.info("%s: not part of the encoder, left out: %s", what, ", ".join(sorted(dropped)[:6]))
    return out
