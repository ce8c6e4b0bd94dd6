"""Layer similarity: linear CKA (Kornblith et al., 2019) between the hidden states of two models.

For frame matrices X (n, p) and Y (n, q) of the same n frames, with centred Gram matrices
K = H X X^T H and L = H Y Y^T H (H = I - 11^T / n):

    CKA(X, Y) = <K, L>_F / (||K||_F ||L||_F)

1 for representations equal up to rotation and isotropic scaling, near 0 for unrelated ones. The
frames are the valid frames of a data dir (both models give the CNN's frame count), sampled to at
most ``max_frames`` so that each Gram matrix is (n, n).
"""
from __future__ import annotations

import torch


def centered_gram(x: torch.Tensor) -> torch.Tensor:
    """(n, d) features -> (n, n) centred linear Gram matrix, in float64."""
    x = x.double()
    x = x - x.mean(0, keepdim=True)  # centring the features centres the Gram matrix
    return x @ x.T


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of (n, p) and (n, q) representations of the same n frames."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same frames: {x.shape[0]} vs {y.shape[0]} rows")
    return cka_from_grams(centered_gram(x), centered_gram(y))


def cka_from_grams(k: torch.Tensor, l: torch.Tensor) -> float:
    """CKA from two centred Gram matrices (see :func:`centered_gram`)."""
    denom = float(k.norm() * l.norm())
    return float((k * l).sum()) / denom if denom > 0 else 0.0


def cka_matrix(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[list[float]]:
    """``[i][j]`` = CKA of layer i of ``a`` and layer j of ``b`` (lists of (n, d) frame matrices)."""
    ga = [centered_gram(x) for x in a]
    gb = [centered_gram(y) for y in b]
    return [[cka_from_grams(k, l) for l in gb] for k in ga]
