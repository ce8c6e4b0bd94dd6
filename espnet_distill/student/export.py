"""Student checkpoints: our self-describing format, and s3prl's ``distiller_local``.

Ours: ``{"format": "espnet_distill.student", "version", "config", "state_dict", "meta"}``,
rebuilt from the file alone by :func:`load_student` (``torch.load(weights_only=True)``).

``distiller_local`` (CNN students without the front-end LayerNorm, as DistilHuBERT):
``{"Config": {"distiller": {...}}, "Distiller": state_dict}`` so that
``S3PRLUpstream("distiller_local", path_or_url=...)`` loads it. Expand-last heads are exported
with the model (s3prl appends their predictions to the hidden states); layer-wise students are
exported as s3prl's "self-hidden" distiller, which has no prediction parameters.
"""
from __future__ import annotations

import os
from pathlib import Path


from espnet_distill.student.model import Student, StudentConfig
from espnet_distill.teacher.checkpoints import CheckpointError, atomic_save, require_keys, safe_load

STUDENT_FORMAT = "espnet_distill.student"


def save_student(path: str | os.PathLike, student: Student, meta: dict | None = None) -> None:
    atomic_save({"format": STUDENT_FORMAT, "version": 1, "config": student.cfg.to_dict(),
                 "state_dict": {k: v.detach().cpu() for k, v in student.state_dict().items()}, "meta": meta or {}}, path)


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
    if cfg.frontend != "cnn":
        raise CheckpointError(f"distiller_local holds waveform-CNN students only; this one uses '{cfg.frontend}'")
    if student.frontend.layer_norm is not None:
        raise CheckpointError("distiller_local has no LayerNorm after the CNN; train the student with "
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
