"""Student checkpoints: our self-describing format, and the formats students leave in.

Ours: ``{"format": "espnet_distill.student", "version", "config", "state_dict", "meta"}``,
rebuilt from the file alone by :func:`load_student` (``torch.load(weights_only=True)``).

Exports (``python -m espnet_distill.bin.export``); each refuses, with the reason, a student it
cannot express exactly:

- ``s3prl``: ``distiller_local`` (CNN students without the front-end LayerNorm, as DistilHuBERT):
  ``{"Config": {"distiller": {...}}, "Distiller": state_dict}`` so that
  ``S3PRLUpstream("distiller_local", path_or_url=...)`` loads it. Expand-last heads are exported
  with the model (s3prl appends their predictions to the hidden states); layer-wise students are
  exported as s3prl's "self-hidden" distiller, which has no prediction parameters.
- ``hf``: CNN students (either LayerNorm placement, with or without the front-end LayerNorm) as a
  transformers ``HubertModel`` directory (config.json, safetensors, preprocessor_config.json).
  The distillation heads are not part of it: it is the encoder downstream tasks use.
- ``onnx``: any student, waveform in, hidden states out (the Fbank front-end's fbank is in the
  graph, its FFT as a matrix product); dynamic batch and length axes.
- int8: dynamic quantization of the linear layers (:func:`quantize_int8` for PyTorch on the CPU,
  :func:`quantize_onnx_int8` for ONNX Runtime).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from espnet_distill.checkpoint_io import (
    CheckpointError,
    atomic_path,
    atomic_save,
    new_file_mode,
    require_keys,
    safe_load,
)
from espnet_distill.data.audio import FRAME_WINDOW, SAMPLE_RATE
from espnet_distill.student.model import Student, StudentConfig

STUDENT_FORMAT = "espnet_distill.student"


class ExportError(CheckpointError):
    """A student that a target format cannot express exactly (the message says why)."""


def save_student(path: str | os.PathLike, student: Student, meta: dict | None = None) -> None:
    atomic_save({"format": STUDENT_FORMAT, "version": 1, "config": student.cfg.to_dict(),
                 "state_dict": {k: v.detach().cpu() for k, v in student.state_dict().items()}, "meta": meta or {}},
                 path)


def load_student(path: str | os.PathLike) -> tuple[Student, dict]:
    """Rebuild a student from one of our checkpoints. Returns (student in eval mode, meta)."""
    ckpt = safe_load(path)
    if ckpt.get("format") != STUDENT_FORMAT:
        raise CheckpointError(f"{path}: not an espnet_distill student checkpoint (format {ckpt.get('format')!r}, "
                              f"keys {sorted(map(str, ckpt))[:8]})")
    require_keys(ckpt, ["config", "state_dict"], str(path))
    student = Student(StudentConfig.from_dict(ckpt["config"]))
    missing, unexpected = student.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing weights {missing[:8]}, unexpected weights {unexpected[:8]}")
    return student.eval(), ckpt.get("meta", {})


def distiller_config(cfg: StudentConfig) -> dict:
    """s3prl DistillerConfig for a CNN student."""
    fe = cfg.frontend_conf
    conv = fe.get("conv_layers")
    from espnet_distill.nn.hubert import DEFAULT_CONV

    conv = conv or DEFAULT_CONV
    out = {
        "extractor_mode": fe.get("extractor_mode", "default"),
        "extractor_conv_feature_layers": "[" + ", ".join(f"({d}, {k}, {s})" for d, k, s in conv) + "]",
        "extractor_dropout": 0.0, "feature_grad_mult": 1.0,
        "conv_pos": cfg.conv_pos, "conv_pos_groups": cfg.conv_pos_groups,
        "encoder_layers": cfg.num_layers, "encoder_embed_dim": cfg.dim, "encoder_ffn_embed_dim": cfg.ffn_dim,
        "encoder_attention_heads": cfg.num_heads, "activation_fn": "gelu", "layer_norm_first": cfg.layer_norm_first,
        "attention_type": "original", "dropout": cfg.dropout, "attention_dropout": cfg.attention_dropout,
        "activation_dropout": cfg.activation_dropout, "encoder_layerdrop": 0.0, "final_dim": cfg.teacher_dim,
        "init_teacher_conv_layers": False, "init_teacher_encoder_layers": False,
    }
    if cfg.pred_head == "expand-last":
        targets = list(cfg.pred_targets or [cfg.teacher_layers])
        out.update(out_layer_type="expand-last", task_emb_type="expand-last", n_tasks=len(targets),
                   pred_layer_id=targets, out_layer_inter_dim=cfg.pred_inter_dim if cfg.pred_inter_dim > 0 else -1)
    else:
        out.update(out_layer_type="self-hidden", task_emb_type="self-hidden", n_tasks=cfg.num_layers + 1,
                   pred_layer_id=list(range(cfg.num_layers + 1)))
    return out


def export_distiller_local(student: Student, path: str | os.PathLike) -> None:
    """Write a CNN student in s3prl's distiller_local format."""
    cfg = student.cfg
    if cfg.layer_heads is not None or cfg.layer_ffn_dims is not None:
        raise ExportError("distiller_local has one size for every layer; a pruned student exports to HF or ONNX")
    if cfg.frontend != "cnn":
        raise ExportError(f"distiller_local holds waveform-CNN students only; this one uses '{cfg.frontend}'")
    if student.frontend.layer_norm is not None:
        raise ExportError("distiller_local has no LayerNorm after the CNN; train the student with "
                              "frontend_conf.layer_norm: false to export it")
    state = {}
    for k, v in student.state_dict().items():
        if k.startswith("frontend."):
            state[k[len("frontend."):]] = v
        elif k.startswith("encoder."):
            state[k] = v
        elif k.startswith("pred_head.output_layer."):
            state[k[len("pred_head."):]] = v
    atomic_save({"Config": {"distiller": distiller_config(cfg)}, "Distiller": state}, Path(path))


# ---------------------------------------------------------------------------- Hugging Face


def uniform_sizes(cfg: StudentConfig) -> tuple[int, int]:
    """(FFN units, heads) of every layer of a model with one size for all layers that computes what
    the student computes: a pruned student's layers padded with zero units and zero heads (a zero
    head reads zero values and writes through zero columns; a zero unit is GELU(0) = 0)."""
    if cfg.layer_heads is None and cfg.layer_ffn_dims is None:
        return cfg.ffn_dim, cfg.num_heads
    head_dim = cfg.head_dim or cfg.dim // cfg.num_heads
    if cfg.dim % head_dim:
        raise ExportError(f"a model of one head width needs dim {cfg.dim} to be a multiple of head_dim {head_dim}")
    return max(1, *(cfg.layer_ffn_dims or [cfg.ffn_dim])), cfg.dim // head_dim


def _padded(w: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """``w`` with zeros appended along ``dim`` up to ``size``."""
    pad = list(w.shape)
    pad[dim] = size - w.shape[dim]
    return torch.cat([w, w.new_zeros(pad)], dim=dim)


def hf_config(cfg: StudentConfig):
    """The transformers ``HubertConfig`` that computes the same hidden states as a CNN student
    (a pruned one padded to one size per layer: :func:`uniform_sizes`)."""
    from transformers import HubertConfig

    if cfg.frontend != "cnn":
        raise ExportError(f"transformers' HubertModel starts with the waveform CNN; this student's front-end is "
                          f"'{cfg.frontend}' (export it to ONNX instead)")
    fe = cfg.frontend_conf
    from espnet_distill.nn.hubert import DEFAULT_CONV

    conv = [list(c) for c in (fe.get("conv_layers") or DEFAULT_CONV)]
    norm = {"default": "group", "layer_norm": "layer"}[fe.get("extractor_mode", "default")]
    ffn, heads = uniform_sizes(cfg)
    return HubertConfig(
        hidden_size=cfg.dim, intermediate_size=ffn, num_hidden_layers=cfg.num_layers,
        num_attention_heads=heads, hidden_act="gelu", feat_extract_activation="gelu",
        conv_dim=[c[0] for c in conv], conv_kernel=[c[1] for c in conv], conv_stride=[c[2] for c in conv],
        conv_bias=False, feat_extract_norm=norm, feat_proj_layer_norm=bool(fe.get("layer_norm", True)),
        num_conv_pos_embeddings=cfg.conv_pos, num_conv_pos_embedding_groups=cfg.conv_pos_groups,
        do_stable_layer_norm=cfg.layer_norm_first, layer_norm_eps=1e-5,
        hidden_dropout=cfg.dropout, attention_dropout=cfg.attention_dropout, activation_dropout=cfg.activation_dropout,
        feat_proj_dropout=0.0, final_dropout=0.0, layerdrop=0.0,
        apply_spec_augment=False, mask_time_prob=0.0, mask_feature_prob=0.0,
    )


def hf_state_dict(student: Student) -> dict[str, torch.Tensor]:
    """Our CNN student's weights under transformers ``HubertModel`` names."""
    fe = student.frontend
    out: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(fe.feature_extractor.conv_layers):
        out[f"feature_extractor.conv_layers.{i}.conv.weight"] = layer[0].weight
        if len(layer) == 4:  # a norm: GroupNorm (layer 0, "default") or the transposed LayerNorm
            norm = layer[2] if isinstance(layer[2], torch.nn.GroupNorm) else getattr(layer[2], "1")
            out[f"feature_extractor.conv_layers.{i}.layer_norm.weight"] = norm.weight
            out[f"feature_extractor.conv_layers.{i}.layer_norm.bias"] = norm.bias
    if fe.layer_norm is not None:
        out["feature_projection.layer_norm.weight"] = fe.layer_norm.weight
        out["feature_projection.layer_norm.bias"] = fe.layer_norm.bias
    c = fe.conv_layers[-1][0]
    proj = fe.post_extract_proj
    out["feature_projection.projection.weight"] = proj.weight if proj is not None else torch.eye(c)
    out["feature_projection.projection.bias"] = proj.bias if proj is not None else torch.zeros(c)
    enc = student.encoder
    pos = getattr(enc.pos_conv, "0")
    out["encoder.pos_conv_embed.conv.bias"] = pos.bias
    out["encoder.pos_conv_embed.conv.parametrizations.weight.original0"] = pos.weight_g
    out["encoder.pos_conv_embed.conv.parametrizations.weight.original1"] = pos.weight_v
    out["encoder.layer_norm.weight"] = enc.layer_norm.weight
    out["encoder.layer_norm.bias"] = enc.layer_norm.bias
    names = {"self_attn.q_proj": "attention.q_proj", "self_attn.k_proj": "attention.k_proj",
             "self_attn.v_proj": "attention.v_proj", "self_attn.out_proj": "attention.out_proj",
             "self_attn_layer_norm": "layer_norm", "fc1": "feed_forward.intermediate_dense",
             "fc2": "feed_forward.output_dense", "final_layer_norm": "final_layer_norm"}
    ffn, heads = uniform_sizes(student.cfg)
    width = heads * (student.cfg.dim // heads)
    rows = {"self_attn.q_proj": width, "self_attn.k_proj": width, "self_attn.v_proj": width, "fc1": ffn}
    columns = {"self_attn.out_proj": width, "fc2": ffn}
    for i, layer in enumerate(enc.layers):
        for ours, theirs in names.items():
            m = layer.get_submodule(ours)
            w, b = m.weight, m.bias
            if ours in rows:  # zero heads or units appended (nothing to append unless pruned)
                w, b = _padded(w, rows[ours], 0), _padded(b, rows[ours], 0)
            elif ours in columns:
                w = _padded(w, columns[ours], 1)
            out[f"encoder.layers.{i}.{theirs}.weight"] = w
            out[f"encoder.layers.{i}.{theirs}.bias"] = b
    return {k: v.detach().cpu().clone() for k, v in out.items()}


def export_hf(student: Student, outdir: str | os.PathLike) -> Path:
    """Write a CNN student as a transformers ``HubertModel`` directory that
    ``HubertModel.from_pretrained(outdir)`` loads; ``output_hidden_states=True`` gives our hidden
    states (hidden_states[0] is the input of layer 1), except that for a pre-LN student
    (``layer_norm_first``) transformers reports the last layer before the final LayerNorm, which
    ``last_hidden_state`` (= our last hidden state) includes. Returns the directory."""
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    model = HubertModel(hf_config(student.cfg)).eval()
    state = hf_state_dict(student)
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - {"masked_spec_embed"})
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ExportError(f"HubertModel's weights do not match the student's: missing {missing[:6]}, "
                          f"unexpected {unexpected[:6]}")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ExportError(f"{k}: HubertModel has shape {tuple(own[k].shape)}, the student {tuple(v.shape)}")
    model.load_state_dict(state, strict=False)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(outdir)
    # raw 16 kHz waveform in [-1, 1], no normalisation: what the student was distilled on
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=False,
                             return_attention_mask=False).save_pretrained(outdir)
    for f in outdir.iterdir():  # safetensors writes 600: every file as a new file of ours (the umask's mode)
        if f.is_file():
            f.chmod(new_file_mode())
    return outdir


def check_output(out: str | os.PathLike, inputs: list[str | os.PathLike], overwrite: bool = False) -> None:
    """Refuse an export output that is one of its ``inputs`` (or a folder holding one), and an
    existing output unless ``overwrite``: the same rule for every target (ExportError)."""
    out = Path(out).resolve()
    for i in inputs:
        src = Path(i).resolve()
        if src == out or out in src.parents:
            raise ExportError(f"output {out} would overwrite the input {i}; choose another output")
    if out.exists() and not overwrite:
        raise ExportError(f"output {out} exists; pass --overwrite to replace it")


# ---------------------------------------------------------------------------- ONNX


class HiddenStates(torch.nn.Module):
    """wav (B, L) float32 in [-1, 1], lengths (B,) int64 -> hidden_states (1 + layers, B, T, D),
    frame_lengths (B,): the student's encoder as one traceable module."""

    def __init__(self, student: Student):
        super().__init__()
        self.student = student

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, mask = self.student.encode(wav, lengths)
        return torch.stack(hidden), mask.sum(1)


ONNX_MIN_SAMPLES = FRAME_WINDOW  # one 25 ms window: the shortest input the exported graph accepts


def export_onnx(student: Student, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write ``HiddenStates(student)`` as ONNX with dynamic batch and sample axes.

    Inputs ``wav`` (B, L >= 400) and ``lengths`` (B,); outputs ``hidden_states``
    (1 + layers, B, T, D) and ``frame_lengths`` (B,). Fbank students compute their fbank in the
    graph, the FFT as a matrix product (equal to ``torch.fft`` up to float rounding).
    """
    import warnings

    wav = 0.1 * torch.randn(2, SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([SAMPLE_RATE, 3 * SAMPLE_RATE // 4])
    with atomic_path(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript exporter: it needs no onnxscript and handles our ops; its warnings
            # about shapes read as Python numbers are checked by the tests (other lengths agree)
            warnings.simplefilter("ignore")
            torch.onnx.export(
                HiddenStates(student).eval(), (wav, lengths), str(tmp), dynamo=False, opset_version=opset,
                input_names=["wav", "lengths"], output_names=["hidden_states", "frame_lengths"],
                dynamic_axes={"wav": {0: "batch", 1: "samples"}, "lengths": {0: "batch"},
                              "hidden_states": {1: "batch", 2: "frames"}, "frame_lengths": {0: "batch"}},
            )
    return Path(path)


def quantize_onnx_int8(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """ONNX Runtime's dynamic int8 quantization (weights int8, activations quantized per batch) of
    the MatMul/Gemm (linear) nodes of the encoder of :func:`export_onnx`'s ``src``, written to
    ``dst``. The front-end stays in float: the Fbank's DFT and mel products lose too much in int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    frontend = [n.name for n in onnx.load(str(src), load_external_data=False).graph.node
                if "/frontend/" in n.name]
    with atomic_path(dst) as tmp:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         nodes_to_exclude=frontend)
    return Path(dst)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """PyTorch dynamic int8 quantization of every ``nn.Linear`` with weights (CPU inference; a copy;
    a pruned student's empty projections stay as they are)."""
    import copy
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization is deprecated in favour of torchao
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        model = copy.deepcopy(model).cpu().eval()
        spec = {name: default_dynamic_qconfig for name, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and m.weight.numel() > 0}
        return quantize_dynamic(model, spec, dtype=torch.qint8)
