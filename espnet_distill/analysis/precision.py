"""How far a teacher's targets move when it runs in a lower precision than fp32.

:func:`target_drift` runs a copy of the teacher with its weights and input cast to each dtype and
compares its hidden states with the fp32 run's over valid frames: the mean absolute difference
relative to the mean absolute value, and the mean cosine between the two. This is what
``distill.teacher_precision: amp`` changes in the distillation targets.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F


@torch.no_grad()
def target_drift(teacher, wav: torch.Tensor, lengths: torch.Tensor, dtypes: list[torch.dtype],
                 layers: list[int] | None = None) -> dict[str, dict[int, dict[str, float]]]:
    """``{dtype name: {layer: {"rel_l1": float, "cos": float}}}`` of the teacher's hidden states in
    each of ``dtypes`` against fp32. wav: (B, L); lengths: (B,); ``layers``: default all."""
    teacher = teacher.float()
    ref = teacher(wav.float(), lengths)
    layers = layers if layers is not None else list(range(len(ref.hidden)))
    m = ref.mask
    out: dict[str, dict[int, dict[str, float]]] = {}
    for dtype in dtypes:
        low = copy.deepcopy(teacher).to(dtype)
        got = low(wav.to(dtype), lengths)
        rows = {}
        for layer in layers:
            a, b = ref.hidden[layer][m], got.hidden[layer][m].float()
            rows[layer] = {"rel_l1": float((a - b).abs().mean() / a.abs().mean().clamp(min=1e-12)),
                           "cos": float(F.cosine_similarity(a, b, dim=-1).mean())}
        out[str(dtype).replace("torch.", "")] = rows
    return out


def drift_table(drift: dict[str, dict[int, dict[str, float]]]) -> str:
    """A markdown table of :func:`target_drift`'s result: a row per layer, a column pair per dtype."""
    names = list(drift)
    layers = list(next(iter(drift.values())))
    head = "| layer | " + " | ".join(f"{n} rel. L1 | {n} cosine" for n in names) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(names))]
    for layer in layers:
        cells = " | ".join(f"{drift[n][layer]['rel_l1']:.2e} | {drift[n][layer]['cos']:.6f}" for n in names)
        lines.append(f"| {layer} | {cells} |")
    return "\n".join(lines)
