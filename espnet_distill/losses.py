"""The losses: small pure functions over valid frames only (distillation: L_reg, L_disc, the
front-end L1; pretraining: masked prediction).

Shapes: B batch, T frames, D features, C classes. ``mask`` is (B, T) bool, True on valid
frames; padded frames never contribute (the public DistilHuBERT/FitHuBERT code averages
over padding; we do not).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T) values over valid frames."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1)


def reg_loss_layer(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, lam: float = 1.0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer of L_reg: mean over valid frames of (1/D)|h - h^|_1 - lam * log sigmoid(cos(h, h^)).

    pred, target: (B, T, D); mask: (B, T). Returns (loss, mean L1, mean cosine), all scalars.
    """
    pred, target = pred.float(), target.float()
    l1 = (pred - target).abs().mean(-1)  # (B, T)
    cos = F.cosine_similarity(pred, target, dim=-1, eps=1e-8)  # (B, T)
    per_frame = l1 - lam * F.logsigmoid(cos)
    return masked_mean(per_frame, mask), masked_mean(l1, mask).detach(), masked_mean(cos, mask).detach()


def reg_loss(preds: dict[int, torch.Tensor], targets: dict[int, torch.Tensor], mask: torch.Tensor, lam: float = 1.0
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_reg averaged over the predicted layers. ``preds``/``targets``: {teacher layer: (B, T, D)}.

    Returns (loss, stats) with per-layer L1 and cosine in ``stats`` (detached scalar tensors: reading
    them is left to the caller, so that a training step does not wait for the device mid-way).
    """
    if not preds:
        raise ValueError("reg_loss: no predicted layers")
    total = 0.0
    stats: dict[str, torch.Tensor] = {}
    for layer, p in preds.items():
        loss, l1, cos = reg_loss_layer(p, targets[layer], mask, lam)
        total = total + loss
        stats[f"l1_{layer}"] = l1
        stats[f"cos_{layer}"] = cos
    loss = total / len(preds)
    stats["reg"] = loss.detach()
    return loss, stats


def disc_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, kind: str = "kl"
              ) -> torch.Tensor:
    """L_disc over valid frames. logits: (B, T, C).

    ``kl``: KL(p_T || p_S) = sum_c p_T (log p_T - log p_S)  (types 1 and 2);
    ``ce``: -log p_S(argmax_c p_T)                           (type 3, HuBERT-style hard labels).
    """
    log_ps = F.log_softmax(student_logits.float(), dim=-1)
    if kind == "kl":
        log_pt = F.log_softmax(teacher_logits.float(), dim=-1)
        per_frame = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    elif kind == "ce":
        per_frame = -log_ps.gather(-1, teacher_logits.argmax(-1, keepdim=True)).squeeze(-1)
    else:
        raise ValueError(f"unknown L_disc kind '{kind}' (kl or ce)")
    return masked_mean(per_frame, mask)


def frontend_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Front-end adaptation: mean L1 over valid frames and features. pred, target: (B, T, D)."""
    return masked_mean((pred.float() - target.float()).abs().mean(-1), mask)


def masked_prediction_loss(logits_m: torch.Tensor, target_m: torch.Tensor, logits_u: torch.Tensor | None = None,
                           target_u: torch.Tensor | None = None, nomask_weight: float = 0.0
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """HuBERT's pretraining loss: cross-entropy of the masked frames' logits, plus
    ``nomask_weight`` times that of the unmasked frames (fairseq's ``pred_nomask_weight``).

    logits_m: (N_m, C) logits of the masked frames; target_m: (N_m,) their cluster labels;
    logits_u, target_u: the same for unmasked frames (used when ``nomask_weight`` > 0 and there
    are any). Returns (loss, stats): ``acc`` on masked frames, ``masked_frames``, and
    ``loss_nomask`` / ``acc_nomask`` when the unmasked term is used (stats are detached).
    """
    loss = F.cross_entropy(logits_m, target_m)
    stats = {"acc": (logits_m.argmax(-1) == target_m).float().mean().detach(), "masked_frames": int(target_m.numel())}
    if nomask_weight > 0 and logits_u is not None and target_u is not None and target_u.numel() > 0:
        um_loss = F.cross_entropy(logits_u, target_u)
        loss = loss + nomask_weight * um_loss
        stats.update(loss_nomask=um_loss.detach(), acc_nomask=(logits_u.argmax(-1) == target_u).float().mean().detach())
    return loss, stats
