"""HuBERT checkpoint formats -> one (HubertConfig, fairseq-named state dict).

Formats (the registry ``FORMATS``; ``detect_format`` picks one from the file's keys):

- ``espnet_distill``: ours, ``{"format": "espnet_distill.hubert", "config", "state_dict", "meta"}``.
- ``hubert_local``: s3prl's converted HuBERT (``task_cfg``, ``model_cfg``, ``model_weight``,
  ``dictionaries_symbols``).
- ``fairseq``: a released fairseq checkpoint (``cfg`` with ``model``/``task``, ``model``), or a
  released WavLM one (unilm's: ``cfg`` is the model config itself, ``model``); converted without
  importing fairseq.
- ``torchaudio_hubert``: a ``HuBERTPretrainModel`` state dict (``wav2vec2.*``,
  ``logit_generator.*``) or a ``Wav2Vec2Model`` one (``hubert_base()``, ``wavlm_model()``: no
  prefix, no codebook), bare or as ``{"state_dict", "config"}``.
- ``espnet_hubert_local``: an ESPnet HuBERT pretraining model (``encoder.hubert_pretrain_model.*``),
  with ESPnet's ``config.yaml`` beside it when there is one.
- ``huggingface``: a transformers ``HubertModel`` / ``WavLMModel`` folder (its path, or its weights
  file with ``config.json`` beside it; teacher/huggingface.py). No codebook.

``fairseq`` reads every layout fairseq saved: ``cfg`` as a dict or an omegaconf DictConfig, or only
an ``argparse.Namespace`` ``args``; ``untie_final_proj`` with one label set (the same Linear as when
tied). ``meta["layout"]`` names the layout read. Torch files are read with
``torch.load(weights_only=True)`` (checkpoint_io.safe_load), ``.safetensors`` with safetensors.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable

import torch

from espnet_distill.checkpoint_io import (
    CheckpointError,
    FairseqDictionary,
    OmegaConfData,
    atomic_save,
    plain_config,
    require_keys,
)
from espnet_distill.data.audio import SAMPLE_RATE
from espnet_distill.nn.hubert import HubertConfig, HubertModel, parse_conv_spec
from espnet_distill.teacher import huggingface as hf

logger = logging.getLogger(__name__)

OUR_FORMAT = "espnet_distill.hubert"


# ----------------------------------------------------------------------------- ours


def save_hubert(path: str | os.PathLike, model: HubertModel, meta: dict | None = None) -> None:
    atomic_save(
        {"format": OUR_FORMAT, "version": 1, "config": model.cfg.to_dict(),
         "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta or {}},
        path,
    )


def _from_ours(ckpt: dict, path: Path, hints: dict) -> tuple[HubertConfig, dict, dict]:
    require_keys(ckpt, ["config", "state_dict"], str(path))
    return HubertConfig.from_dict(ckpt["config"]), ckpt["state_dict"], ckpt.get("meta", {})


# ----------------------------------------------------------------------------- fairseq / s3prl

_FAIRSEQ_FIELDS = {  # fairseq model cfg -> HubertConfig
    "extractor_mode": "extractor_mode", "encoder_layers": "num_layers", "encoder_embed_dim": "embed_dim",
    "encoder_ffn_embed_dim": "ffn_dim", "encoder_attention_heads": "num_heads", "conv_bias": "conv_bias",
    "conv_pos": "conv_pos", "conv_pos_groups": "conv_pos_groups", "layer_norm_first": "layer_norm_first",
    "final_dim": "final_dim", "logit_temp": "logit_temp", "dropout": "dropout",
    "attention_dropout": "attention_dropout", "activation_dropout": "activation_dropout",
    "dropout_input": "dropout_input", "encoder_layerdrop": "layerdrop",
}
_WAVLM_FIELDS = ("relative_position_embedding", "num_buckets", "max_distance", "gru_rel_pos")  # same names as ours


def config_from_fairseq(model_cfg: dict, task_cfg: dict, state: dict, what: str) -> HubertConfig:
    """HubertConfig from fairseq-style model/task configs (plain dicts)."""
    model_cfg = dict(model_cfg)
    kw = {ours: model_cfg[theirs] for theirs, ours in _FAIRSEQ_FIELDS.items() if theirs in model_cfg}
    kw.update({k: model_cfg[k] for k in _WAVLM_FIELDS if k in model_cfg})
    if "relative_position_embedding" in model_cfg:  # unilm keeps normalize in the model config
        kw["normalize"] = bool(model_cfg.get("normalize", False))
    if "conv_feature_layers" in model_cfg:
        kw["conv_layers"] = parse_conv_spec(str(model_cfg["conv_feature_layers"]))
    kw.setdefault("normalize", bool(task_cfg.get("normalize", False)))
    act = model_cfg.get("activation_fn", "gelu")
    if act != "gelu":
        raise CheckpointError(f"{what}: activation_fn {act!r} is not supported (only gelu)")
    kw["final_dim"] = 0
    if "final_proj.weight" in state:
        kw["final_dim"] = state["final_proj.weight"].shape[0]
        if model_cfg.get("untie_final_proj", False):  # final_proj is final_dim x (label sets) wide
            label_sets = kw["final_dim"] // (int(model_cfg.get("final_dim") or 0) or kw.get("embed_dim", 768))
            if label_sets != 1:
                raise CheckpointError(f"{what}: untie_final_proj with {label_sets} label sets (final_proj "
                                      f"{kw['final_dim']} wide) is not supported; a teacher of one label set is")
    kw["num_classes"] = state["label_embs_concat"].shape[0] if "label_embs_concat" in state else 0
    return HubertConfig(**kw)


_REQUIRED_WEIGHTS = ["feature_extractor.conv_layers.0.0.weight", "encoder.pos_conv.0.weight_v",
                     "encoder.layers.0.fc1.weight"]


def fairseq_model_cfg(cfg: HubertConfig) -> dict:
    """fairseq/s3prl ``model_cfg`` (plain dict) describing ``cfg``."""
    out = {theirs: getattr(cfg, ours) for theirs, ours in _FAIRSEQ_FIELDS.items()}
    out["conv_feature_layers"] = "[" + ", ".join(f"({d}, {k}, {s})" for d, k, s in cfg.conv_layers) + "]"
    out.update(activation_fn="gelu", label_rate=50, untie_final_proj=False, feature_grad_mult=0.0)
    return out


def save_s3prl_hubert_local(path: str | os.PathLike, model: HubertModel) -> None:
    """Write ``model`` in s3prl's converted HuBERT format (``S3PRLUpstream("hubert_local", path)``)."""
    k = model.cfg.num_classes
    atomic_save(
        {
            "task_cfg": {"normalize": model.cfg.normalize, "sample_rate": SAMPLE_RATE, "label_rate": 50,
                         "labels": ["km"]},
            "model_cfg": fairseq_model_cfg(model.cfg),
            "model_weight": {k_: v.detach().cpu() for k_, v in model.state_dict().items()},
            "dictionaries_symbols": [[str(i) for i in range(k)]],
        },
        path,
    )


def _from_s3prl(ckpt: dict, path: Path, hints: dict) -> tuple[HubertConfig, dict, dict]:
    require_keys(ckpt, ["task_cfg", "model_cfg", "model_weight", "dictionaries_symbols"],
                 f"{path} (s3prl hubert_local)")
    state = ckpt["model_weight"]
    require_keys(state, _REQUIRED_WEIGHTS, f"{path} model_weight")
    cfg = config_from_fairseq(ckpt["model_cfg"], ckpt["task_cfg"], state, str(path))
    return cfg, state, {"dictionaries_symbols": ckpt["dictionaries_symbols"], "source_format": "hubert_local",
                        "layout": "s3prl hubert_local (task_cfg, model_cfg, model_weight)"}


def fairseq_layout(ckpt: dict, path: Path) -> tuple[dict, str]:
    """The ``{"model", "task"}`` configs of a fairseq checkpoint and the layout they came in:
    ``cfg`` a plain dict (newer fairseq), ``cfg`` an omegaconf DictConfig (older), ``cfg`` a WavLM
    model config (unilm's), or no ``cfg`` and an ``argparse.Namespace`` ``args`` (the oldest, as
    the archived HuBERT Base was saved: one flat namespace that fairseq itself splits into model
    and task configs, so both read it whole)."""
    if ckpt.get("cfg") is None:
        args = plain_config(ckpt.get("args"))
        if not isinstance(args, dict):
            raise CheckpointError(f"{path} (fairseq): neither cfg nor args is a config (args: "
                                  f"{type(ckpt.get('args')).__name__})")
        return {"model": args, "task": args}, "fairseq args (argparse.Namespace)"
    layout = "fairseq cfg (omegaconf DictConfig)" if isinstance(ckpt["cfg"], OmegaConfData) else "fairseq cfg (dict)"
    cfg = plain_config(ckpt["cfg"])
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path} (fairseq): cfg is a {type(cfg).__name__}, not a config mapping")
    if "model" not in cfg and "encoder_layers" in cfg:  # unilm's WavLM: cfg is the model config
        return {"model": cfg, "task": {}}, "unilm WavLM cfg"
    require_keys(cfg, ["model", "task"], f"{path} cfg")
    return {"model": plain_config(cfg["model"]), "task": plain_config(cfg["task"])}, layout


def _from_fairseq(ckpt: dict, path: Path, hints: dict) -> tuple[HubertConfig, dict, dict]:
    cfg, layout = fairseq_layout(ckpt, path)
    state = dict(ckpt["model"])
    if "label_embs" in state and "label_embs_concat" not in state:  # before fairseq's update_ckpt.py
        state["label_embs_concat"] = state.pop("label_embs")
    require_keys(state, _REQUIRED_WEIGHTS, f"{path} model")
    out = config_from_fairseq(cfg["model"], cfg["task"], state, str(path))
    meta = {"source_format": "fairseq", "layout": layout}
    dicts = (ckpt.get("task_state") or {}).get("dictionaries") or []
    if dicts and all(isinstance(d, FairseqDictionary) for d in dicts):
        meta["dictionaries_symbols"] = [list(d.symbols) for d in dicts]
    return out, state, meta


# ----------------------------------------------------------------------------- torchaudio / espnet

_TA_RULES: list[tuple[str, str]] = [
    (r"^wav2vec2\.feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"^wav2vec2\.encoder\.feature_projection\.layer_norm\.", "layer_norm."),
    (r"^wav2vec2\.encoder\.feature_projection\.projection\.", "post_extract_proj."),
    (r"^wav2vec2\.encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$",
     "encoder.pos_conv.0.weight_g"),
    (r"^wav2vec2\.encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$",
     "encoder.pos_conv.0.weight_v"),
    (r"^wav2vec2\.encoder\.transformer\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
    (r"^wav2vec2\.encoder\.transformer\.layer_norm\.", "encoder.layer_norm."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.attention\.attention\.out_proj\.",
     r"encoder.layers.\1.self_attn.out_proj."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.attention\.rel_attn_embed\.",
     r"encoder.layers.\1.self_attn.relative_attention_bias."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.attention\.gru_rel_pos_linear\.",
     r"encoder.layers.\1.self_attn.grep_linear."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.attention\.gru_rel_pos_const$",
     r"encoder.layers.\1.self_attn.grep_a"),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    (r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    (r"^mask_generator\.mask_embedding$", "mask_emb"),
    (r"^logit_generator\.final_proj\.", "final_proj."),
    (r"^logit_generator\.label_embeddings$", "label_embs_concat"),
]
_TA_STRIDE = {10: 5, 3: 2, 2: 2}  # HuBERT's CNN: kernel -> stride


def torchaudio_to_fairseq(state: dict, what: str, hints: dict | None = None) -> tuple[HubertConfig, dict]:
    """Rename a torchaudio HuBERTPretrainModel state dict and infer its config (:func:`infer_config`)."""
    out = torchaudio_names_to_fairseq(state, what)
    return infer_config(out, what, hints), out


def torchaudio_names_to_fairseq(state: dict, what: str) -> dict[str, torch.Tensor]:
    """torchaudio's HuBERTPretrainModel / Wav2Vec2Model key names -> fairseq's."""
    if not any(str(k).startswith("wav2vec2.") for k in state):  # a Wav2Vec2Model (no pretraining head)
        state = {f"wav2vec2.{k}": v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    layer_norm_mode = any(re.match(r"^wav2vec2\.feature_extractor\.conv_layers\.1\.layer_norm\.", k) for k in state)
    for k, v in state.items():
        m = re.match(r"^wav2vec2\.feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)$", k)
        if m:
            out[f"feature_extractor.conv_layers.{m.group(1)}.2.{'1.' if layer_norm_mode else ''}{m.group(2)}"] = v
            continue
        m = re.match(r"^wav2vec2\.encoder\.transformer\.layers\.(\d+)\.attention\.attention\.in_proj_(weight|bias)$", k)
        if m:  # WavLM: nn.MultiheadAttention's packed q, k, v
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                out[f"encoder.layers.{m.group(1)}.self_attn.{name}.{m.group(2)}"] = part
            continue
        for pat, rep in _TA_RULES:
            if re.match(pat, k):
                out[re.sub(pat, rep, k)] = v
                break
        else:
            raise CheckpointError(f"{what}: unexpected torchaudio key {k!r}")
    require_keys(out, _REQUIRED_WEIGHTS, f"{what} (after renaming torchaudio keys)")
    return out


def infer_config(state: dict, what: str, hints: dict | None = None) -> HubertConfig:
    """HubertConfig of a fairseq-named HuBERT state dict, from its shapes and key names.

    Shapes give everything except the head count, ``layer_norm_first`` and the CNN strides:
    they come from ``hints`` (torchaudio factory names ``encoder_num_heads``,
    ``encoder_layer_norm_first``, ``extractor_conv_layer_config``), else embed_dim // 64 heads,
    layer_norm_first for width >= 1024 (true of HuBERT Base, Large and XLarge) and HuBERT's
    kernel -> stride rule. ``logit_temp`` and ``normalize`` may be hinted too. A WavLM state dict
    (a relative position table in the first layer) gives its buckets and head count; its
    ``max_distance`` comes from the hint ``encoder_max_distance`` (default 800, WavLM's).
    """
    hints = hints or {}
    conv = []
    i = 0
    while f"feature_extractor.conv_layers.{i}.0.weight" in state:
        dim, _, k = state[f"feature_extractor.conv_layers.{i}.0.weight"].shape
        conv.append([dim, k, _TA_STRIDE.get(k, 0)])
        i += 1
    if hints.get("extractor_conv_layer_config"):
        conv = [list(c) for c in hints["extractor_conv_layer_config"]]
    elif any(c[2] == 0 for c in conv):
        raise CheckpointError(f"{what}: cannot infer CNN strides; give extractor_conv_layer_config")
    embed = state["encoder.layer_norm.weight"].shape[0]
    table = state.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
    wavlm = {}
    if table is not None:
        wavlm = dict(relative_position_embedding=True, num_buckets=table.shape[0],
                     max_distance=int(hints.get("encoder_max_distance", 800)),
                     gru_rel_pos="encoder.layers.0.self_attn.grep_a" in state)
        hints = {"encoder_num_heads": table.shape[1], **hints}
    n_layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
    return HubertConfig(
        conv_layers=conv,
        conv_bias="feature_extractor.conv_layers.0.0.bias" in state,
        extractor_mode="layer_norm" if "feature_extractor.conv_layers.0.2.1.weight" in state else "default",
        embed_dim=embed,
        ffn_dim=state["encoder.layers.0.fc1.weight"].shape[0],
        num_layers=n_layers,
        num_heads=int(hints.get("encoder_num_heads", max(1, embed // 64))),
        conv_pos=state["encoder.pos_conv.0.weight_v"].shape[-1],
        conv_pos_groups=embed // state["encoder.pos_conv.0.weight_v"].shape[1],
        layer_norm_first=bool(hints.get("encoder_layer_norm_first", embed >= 1024)),
        final_dim=state["final_proj.weight"].shape[0] if "final_proj.weight" in state else 0,
        num_classes=state["label_embs_concat"].shape[0] if "label_embs_concat" in state else 0,
        logit_temp=float(hints.get("logit_temp", 0.1)),
        normalize=bool(hints.get("normalize", False)),
        **wavlm,
    )


def _from_torchaudio(ckpt: dict, path: Path, hints: dict) -> tuple[HubertConfig, dict, dict]:
    state = ckpt
    if "state_dict" in ckpt:
        state, hints = ckpt["state_dict"], {**ckpt.get("config", {}), **hints}
    cfg, out = torchaudio_to_fairseq(state, str(path), hints)
    return cfg, out, {"source_format": "torchaudio_hubert"}


ESPNET_PREFIX = "encoder.hubert_pretrain_model."


def _from_espnet(ckpt: dict, path: Path, hints: dict) -> tuple[HubertConfig, dict, dict]:
    state = {k[len(ESPNET_PREFIX):]: v for k, v in ckpt.items() if k.startswith(ESPNET_PREFIX)}
    if not state:
        raise CheckpointError(f"{path}: no '{ESPNET_PREFIX}*' keys: not an ESPnet HuBERT pretraining model")
    cfg_path = path.parent / "config.yaml"
    if cfg_path.is_file():
        from espnet_distill.config import read_yaml

        hints = {**(read_yaml(cfg_path).get("encoder_conf", {}) or {}), **hints}
    cfg, out = torchaudio_to_fairseq(state, str(path), hints)
    return cfg, out, {"source_format": "espnet_hubert_local"}


def _from_huggingface(ckpt: dict, path: Path, hints: dict) -> tuple[HubertConfig, dict, dict]:
    """transformers' HubertModel / WavLMModel weights (``path``) with the config.json beside them."""
    folder = path.parent
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{path}: Hugging Face weights need the config.json of their folder; "
                              f"{folder / 'config.json'} is missing")
    conf = hf.read_json(folder / "config.json")
    normalize, said = hf.normalize_of(folder, hints)
    logger.info("%s: normalize=%s (from %s)", folder, normalize, said)
    cfg = HubertConfig(**hf.config_from_hf(conf, str(folder / "config.json"), normalize))
    state = torchaudio_names_to_fairseq(hf.to_torchaudio_names(ckpt, str(path)), str(path))
    if cfg.relative_position_embedding:
        cfg.gru_rel_pos = "encoder.layers.0.self_attn.grep_a" in state
    layout = f"Hugging Face {conf.get('model_type')} ({path.name} + config.json)"
    return cfg, state, {"source_format": "huggingface", "layout": layout, "normalize_from": said}


FORMATS: dict[str, Callable[[dict, Path, dict], tuple[HubertConfig, dict, dict]]] = {
    "espnet_distill": _from_ours,
    "hubert_local": _from_s3prl,
    "fairseq": _from_fairseq,
    "torchaudio_hubert": _from_torchaudio,
    "espnet_hubert_local": _from_espnet,
    "huggingface": _from_huggingface,
}


def detect_format(ckpt: dict, path: Path) -> str:
    if ckpt.get("format") == OUR_FORMAT:
        return "espnet_distill"
    if "model_weight" in ckpt or "model_cfg" in ckpt:
        return "hubert_local"
    if "model" in ckpt and ("cfg" in ckpt or "args" in ckpt):
        return "fairseq"
    if hf.is_hf_state(ckpt):
        return "huggingface"
    keys = ckpt.get("state_dict", ckpt)
    if isinstance(keys, dict) and any(str(k).startswith(("wav2vec2.", "encoder.transformer.layers.")) for k in keys):
        return "torchaudio_hubert"
    if any(str(k).startswith(ESPNET_PREFIX) for k in ckpt):
        return "espnet_hubert_local"
    if "format" in ckpt:
        raise CheckpointError(f"{path}: format {ckpt['format']!r} is not a HuBERT checkpoint format we read")
    raise CheckpointError(
        f"{path}: unknown checkpoint format (top-level keys {sorted(map(str, ckpt))[:8]}); "
        f"supported: {sorted(FORMATS)}"
    )


def read_checkpoint(path: Path) -> tuple[Path, dict]:
    """The file a path names and its contents, read weights-only: a Hugging Face folder gives its
    weights file (``.safetensors`` read with safetensors), any other path is a torch file."""
    if hf.is_hf_folder(path):
        path = hf.weights_file(path)
    elif path.is_dir():
        raise CheckpointError(f"{path}: a folder without config.json; give a checkpoint file or a Hugging Face folder")
    return path, hf.read_weights(path)


def load_hubert(path: str | os.PathLike, fmt: str = "auto", strict: bool = True,
                hints: dict | None = None) -> tuple[HubertModel, dict]:
    """Build a :class:`HubertModel` from any supported checkpoint. Returns (model, meta).

    ``hints``: torchaudio factory arguments for state dicts that do not carry their
    config (``encoder_num_heads``, ``encoder_layer_norm_first``, ``extractor_conv_layer_config``).
    """
    path, ckpt = read_checkpoint(Path(path))
    if fmt == "auto":
        fmt = detect_format(ckpt, path)
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; supported: {sorted(FORMATS)} or 'auto'")
    cfg, state, meta = FORMATS[fmt](ckpt, path, dict(hints or {}))
    model = HubertModel(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "mask_emb"]
    if strict and (missing or unexpected):
        raise CheckpointError(f"{path} ({fmt}): missing weights {missing[:10]}, unexpected weights {unexpected[:10]}")
    meta = dict(meta, format=fmt, path=str(path))
    return model, meta


def convert_to_ours(src: str | os.PathLike, dst: str | os.PathLike, fmt: str = "auto") -> HubertModel:
    """Convert any supported HuBERT checkpoint (a released fairseq one included) to our format,
    keeping final_proj and label_embs_concat."""
    model, meta = load_hubert(src, fmt)
    save_hubert(dst, model, meta={"converted_from": str(src), **{k: v for k, v in meta.items() if k != "path"}})
    return model
