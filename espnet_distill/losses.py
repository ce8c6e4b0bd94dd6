"""The losses: small pure functions over valid frames only (distillation: L_reg, L_disc, the
front-end L1; pretraining: masked prediction).

Every loss is returned as a :data:`Sum`, a pair (sum over items, number of items), not as a
mean: the trainer adds the sums and the counts of every process and micro-batch of an update and
divides once (:func:`mean`), so that N processes compute the update that one process computes
on the same utterances (fairseq's ``sample_size`` rule).

Shapes: B batch, T frames, D features, C classes. ``mask`` is (B, T) bool, True on valid
frames; padded frames never contribute (the public DistilHuBERT/FitHuBERT code averages
over padding; we do not).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Sum = tuple[torch.Tensor, torch.Tensor]  # (0-dim sum over items, 0-dim number of items)


def mean(s: Sum) -> torch.Tensor:
    """The mean of a :data:`Sum` (0 when it counts no item)."""
    return s[0] / s[1].clamp(min=1)


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> Sum:
    """(B, T) values summed over valid frames, and the number of valid frames."""
    m = mask.to(x.dtype)
    return (x * m).sum(), m.sum()


def reg_per_frame(pred: torch.Tensor, target: torch.Tensor, lam: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer of L_reg per frame: (1/D)|h - h^|_1 - lam * log sigmoid(cos(h, h^)).

    pred, target: (B, T, D) in any float dtypes. Returns (loss, L1, cosine), each (B, T) in fp32: the
    reductions accumulate in fp32 without an fp32 copy of either input.
    """
    l1 = (pred - target).abs().mean(-1, dtype=torch.float32)
    dot = (pred * target).sum(-1, dtype=torch.float32)
    norms = (torch.linalg.vector_norm(pred, dim=-1, dtype=torch.float32)
             * torch.linalg.vector_norm(target, dim=-1, dtype=torch.float32))
    cos = dot / norms.clamp(min=1e-8)
    return l1 - lam * F.logsigmoid(cos), l1, cos


def reg_loss(preds: dict[int, torch.Tensor], targets: dict[int, torch.Tensor], mask: torch.Tensor, lam: float = 1.0
             ) -> tuple[Sum, dict[str, Sum]]:
    """L_reg averaged over the predicted layers, summed over valid frames.

    ``preds``/``targets``: {teacher layer: (B, T, D)}; mask: (B, T). Returns (loss, stats): the loss
    as (sum over frames of the layer-averaged per-frame loss, frames), and per-layer ``l1_<n>``,
    ``cos_<n>`` and ``reg`` as detached Sums (reading them is left to the caller, so that a training
    step does not wait for the device mid-way).
    """
    if not preds:
        raise ValueError("reg_loss: no predicted layers")
    total = 0.0
    stats: dict[str, Sum] = {}
    for layer, p in preds.items():
        per_frame, l1, cos = reg_per_frame(p, targets[layer], lam)
        total = total + per_frame
        stats[f"l1_{layer}"] = _detached(masked_sum(l1, mask))
        stats[f"cos_{layer}"] = _detached(masked_sum(cos, mask))
    loss = masked_sum(total / len(preds), mask)
    stats["reg"] = _detached(loss)
    return loss, stats


def disc_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, kind: str = "kl") -> Sum:
    """L_disc summed over valid frames. logits: (B, T, C).

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
    return masked_sum(per_frame, mask)


def at_temperature(logits: torch.Tensor, divisor: float, temperature: float | None) -> torch.Tensor:
    """Logits that were divided by ``divisor``, divided by ``temperature`` instead:
    ``logits * divisor / temperature``. ``temperature=None``: the logits as they are."""
    return logits if temperature is None else logits * (divisor / temperature)


def frontend_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> Sum:
    """Front-end adaptation: L1 averaged over features, summed over valid frames. pred, target: (B, T, D)."""
    return masked_sum((pred.float() - target.float()).abs().mean(-1), mask)


def masked_prediction_loss(logits_m: torch.Tensor, target_m: torch.Tensor, logits_u: torch.Tensor | None = None,
                           target_u: torch.Tensor | None = None, nomask_weight: float = 0.0
                           ) -> tuple[Sum, dict[str, Sum]]:
    """HuBERT's pretraining loss as fairseq's ``hubert`` criterion defines it: the cross-entropy
    summed over the masked frames, plus ``nomask_weight`` times that of the unmasked frames, over
    the number of frames that take part (masked frames, plus unmasked ones when the weight is > 0).

    logits_m: (N_m, C) logits of the masked frames; target_m: (N_m,) their cluster labels;
    logits_u, target_u: the same for the unmasked frames. Returns (loss, stats): ``acc`` on masked
    frames and, when the unmasked term is used, ``loss_nomask`` / ``acc_nomask`` (detached Sums).
    """
    ce_m = F.cross_entropy(logits_m, target_m, reduction="sum")
    n_m = torch.tensor(float(target_m.numel()), device=logits_m.device)
    stats = {"acc": ((logits_m.argmax(-1) == target_m).float().sum().detach(), n_m)}
    if nomask_weight <= 0:
        return (ce_m, n_m), stats
    if logits_u is None or target_u is None:
        logits_u, target_u = logits_m[:0], target_m[:0]
    ce_u = F.cross_entropy(logits_u, target_u, reduction="sum")
    n_u = torch.tensor(float(target_u.numel()), device=logits_m.device)
    hits_u = (logits_u.argmax(-1) == target_u).float().sum().detach()
    stats.update(loss_nomask=(ce_u.detach(), n_u), acc_nomask=(hits_u, n_u))
    return (ce_m + nomask_weight * ce_u, n_m + n_u), stats


def _detached(s: Sum) -> Sum:
    return s[0].detach(), s[1].detach()
