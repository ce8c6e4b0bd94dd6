"""Distillation heads of a student (dropped after distillation).

Prediction heads map student hidden states to teacher layers (registry ``PRED_HEADS``):

- ``expand-last`` (DistilHuBERT): from the last student layer, Linear(D -> I * N) + GELU +
  a split linear (N blocks of I -> D_T), predicting N teacher layers. Parameter names
  follow s3prl's distiller (``output_layer.0``, ``output_layer.2``), so it exports as is.
- ``layer-wise`` (FitHuBERT / D&T): one Linear(D -> D_T) per mapped student layer,
  ``layer_map = {student_layer: teacher_layer}``.

L_disc heads map the last student layer to cluster logits (registry ``DISC_HEADS``):

- ``type1``: Linear(D -> F), cosine against the teacher's frozen label embeddings / tau;
- ``type2``: Linear(D -> C) logits (not divided by tau);
- ``type3``: Linear(D -> C) logits, trained with cross-entropy on the teacher's argmax;
- ``type3_cosine``: the authors' type 3 (TCL606/s3prl): type1's cosine head trained with
  cross-entropy on the teacher's argmax (their softmax over [positive; all embeddings], the
  positive's duplicate masked, is this softmax over the embeddings).

Each head's ``divisor`` is what its logits are divided by (tau, or 1), so that the loss can put
them at another temperature (:func:`espnet_distill.losses.at_temperature`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SplitLinear(nn.Module):
    """N independent Linear(I -> O) over the N blocks of a (..., N * I) input.
    weight (N, I, O), bias (1, 1, N, O) as s3prl's distiller."""

    def __init__(self, in_dim: int, n: int, out_dim: int):
        super().__init__()
        self.in_dim, self.n, self.out_dim = in_dim, n, out_dim
        bound = in_dim ** -0.5
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(1, 1, n, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        y = torch.einsum("btni,nio->btno", x.view(b, t, self.n, self.in_dim), self.weight) + self.bias
        return y  # (B, T, N, O)


class ExpandLastHead(nn.Module):
    """Predict ``targets`` (teacher layer indices) from the last student layer."""

    kind = "expand-last"

    def __init__(self, dim: int, teacher_dim: int, targets: list[int], num_student_layers: int, inter_dim: int = 0):
        super().__init__()
        self.targets = [int(t) for t in targets]
        inter = inter_dim if inter_dim > 0 else dim
        self.inter_dim = inter
        self.output_layer = nn.Sequential(nn.Linear(dim, inter * len(self.targets)), nn.GELU(),
                                          SplitLinear(inter, len(self.targets), teacher_dim))
        self.source = num_student_layers

    def forward(self, hidden: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        y = self.output_layer(hidden[self.source])  # (B, T, N, D_T)
        return {t: y[:, :, i] for i, t in enumerate(self.targets)}


class LayerWiseHeads(nn.Module):
    """One Linear(D -> D_T) per student layer in ``layer_map`` (student layer -> teacher layer)."""

    kind = "layer-wise"

    def __init__(self, dim: int, teacher_dim: int, layer_map: dict[int, int], num_student_layers: int):
        super().__init__()
        self.layer_map = {int(s): int(t) for s, t in layer_map.items()}
        for s in self.layer_map:
            if not 1 <= s <= num_student_layers:
                raise ValueError(f"layer_map names student layer {s}, "
                                 f"but the student has layers 1..{num_student_layers}")
        self.heads = nn.ModuleDict({str(s): nn.Linear(dim, teacher_dim) for s in self.layer_map})

    def forward(self, hidden: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        return {t: self.heads[str(s)](hidden[s]) for s, t in self.layer_map.items()}


def build_pred_head(kind: str, dim: int, teacher_dim: int, num_student_layers: int, teacher_layers: int,
                    targets: list[int] | None = None, layer_map: dict | None = None, inter_dim: int = 0) -> nn.Module:
    if kind == "expand-last":
        targets = targets or [teacher_layers]
        bad = [t for t in targets if not 0 <= int(t) <= teacher_layers]
        if bad:
            raise ValueError(f"prediction targets {bad} are not teacher layers 0..{teacher_layers}")
        return ExpandLastHead(dim, teacher_dim, targets, num_student_layers, inter_dim)
    if kind == "layer-wise":
        if layer_map is None:
            if num_student_layers != teacher_layers:
                raise ValueError(f"layer-wise heads need a layer_map when the student ({num_student_layers} layers) "
                                 f"and the teacher ({teacher_layers}) differ in depth")
            layer_map = {i: i for i in range(1, num_student_layers + 1)}
        bad = [t for t in layer_map.values() if not 0 <= int(t) <= teacher_layers]
        if bad:
            raise ValueError(f"layer_map targets {bad} are not teacher layers 0..{teacher_layers}")
        return LayerWiseHeads(dim, teacher_dim, layer_map, num_student_layers)
    raise ValueError(f"unknown prediction head '{kind}'; choose one of {sorted(PRED_HEADS)}")


PRED_HEADS = {"expand-last": ExpandLastHead, "layer-wise": LayerWiseHeads}


class CosineDiscHead(nn.Module):
    """type1 (KL to p_T) and type3_cosine (cross-entropy on argmax p_T): cos(Linear(h), e_c) / tau
    against the teacher's frozen label embeddings (a buffer)."""

    def __init__(self, dim: int, label_embs: torch.Tensor, tau: float, loss: str = "kl"):
        super().__init__()
        self.loss = loss
        self.proj = nn.Linear(dim, label_embs.shape[1])
        self.register_buffer("label_embs", label_embs.detach().clone())
        self.tau = tau

    @property
    def divisor(self) -> float:
        return self.tau

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.proj(h).float(), dim=-1, eps=1e-8)
        return z @ F.normalize(self.label_embs.float(), dim=-1, eps=1e-8).T / self.tau


class LinearDiscHead(nn.Module):
    """type2 (KL to p_T) and type3 (cross-entropy on argmax p_T): Linear(D -> C) logits."""

    def __init__(self, dim: int, num_classes: int, loss: str):
        super().__init__()
        self.proj = nn.Linear(dim, num_classes)
        self.loss = loss
        self.divisor = 1.0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h).float()


def build_disc_head(kind: str, dim: int, label_embs: torch.Tensor, tau: float) -> nn.Module:
    if kind not in DISC_HEADS:
        raise ValueError(f"unknown L_disc head '{kind}'; choose one of {sorted(DISC_HEADS)}")
    return DISC_HEADS[kind](dim, label_embs, tau)


DISC_HEADS = {
    "type1": lambda dim, embs, tau: CosineDiscHead(dim, embs, tau),
    "type2": lambda dim, embs, tau: LinearDiscHead(dim, embs.shape[0], "kl"),
    "type3": lambda dim, embs, tau: LinearDiscHead(dim, embs.shape[0], "ce"),
    "type3_cosine": lambda dim, embs, tau: CosineDiscHead(dim, embs, tau, "ce"),
}
