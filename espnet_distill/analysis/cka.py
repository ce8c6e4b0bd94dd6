"""Layer similarity: linear CKA (Kornblith et al., 2019) between the hidden states of two models.

For frame matrices X (n, p) and Y (n, q) of the same n frames, with centred Gram matrices
K = H X X^T H and L = H Y Y^T H (H = I - 11^T / n):

    CKA(X, Y) = <K, L>_F / (||K||_F ||L||_F)

1 for representations equal up to rotation and isotropic scaling, near 0 for unrelated ones. The
frames are the valid frames of a data dir (both models give the CNN's frame count), sampled to at
most ``max_frames`` so that each Gram matrix is (n, n).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from espnet_distill.asr.experiment import Experiment
from espnet_distill.config import ConfigError
from espnet_distill.data.dataset import AudioDataset, BucketBatches, collate

logger = logging.getLogger(__name__)


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


def cka_from_grams(gram_x: torch.Tensor, gram_y: torch.Tensor) -> float:
    """CKA from two centred Gram matrices (see :func:`centered_gram`)."""
    denom = float(gram_x.norm() * gram_y.norm())
    return float((gram_x * gram_y).sum()) / denom if denom > 0 else 0.0


def cka_matrix(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[list[float]]:
    """``[i][j]`` = CKA of layer i of ``a`` and layer j of ``b`` (lists of (n, d) frame matrices)."""
    ga = [centered_gram(x) for x in a]
    gb = [centered_gram(y) for y in b]
    return [[cka_from_grams(x, y) for y in gb] for x in ga]


@torch.no_grad()
def layer_frames(encode, ds: AudioDataset, frames: torch.Tensor | None, seed: int, max_frames: int
                 ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every layer's hidden states on the valid frames of ``ds``, restricted to ``frames`` (indices
    into the concatenated valid frames), or to ``max_frames`` of them drawn with ``seed``."""
    per_layer: list[list[torch.Tensor]] | None = None
    for idx in BucketBatches(ds.samples, 60.0, shuffle=False):
        b = collate([ds[i] for i in idx])
        hidden, mask = encode(b["wav"], b["lengths"])
        if per_layer is None:
            per_layer = [[] for _ in hidden]
        for layer, h in enumerate(hidden):
            per_layer[layer].append(h[mask].float())
    layers = [torch.cat(x) for x in per_layer]
    if frames is None:
        g = torch.Generator().manual_seed(seed)
        n = layers[0].shape[0]
        frames = torch.randperm(n, generator=g)[:max_frames].sort().values
    return [x[frames] for x in layers], frames


def teacher_encode(teacher):
    """The teacher with the students' ``encode(wav, lengths) -> (hidden, mask)`` interface."""
    def encode(wav, lengths):
        out = teacher(wav, lengths)
        return out.hidden, out.mask
    return encode


def asr_student(exp: Path):
    """(fine-tuned upstream, distilled student checkpoint) of an ESPnet experiment of ours."""
    from espnet_distill.asr.task import load_model

    experiment = Experiment.read(exp)
    ckpt = experiment.student_checkpoint
    if experiment.config.get("frontend") != "distilled" or not ckpt:
        raise ConfigError(f"{exp}: not an ESPnet experiment with a distilled frontend")
    model, _ = load_model(exp / "config.yaml", experiment.model_file(), "cpu")
    return model.frontend.upstream.eval(), ckpt

def compare_models(jobs: list[tuple], ds: AudioDataset, outdir: Path, data_dir: str, seed: int = 0,
                   max_frames: int = 3000) -> None:
    """For each ``(name, reference encode, its label, other encode, its label)`` of ``jobs``: the CKA
    of every reference layer against every other layer on ``max_frames`` frames of ``ds`` (drawn
    with ``seed``), written as OUTDIR/<name>.cka.json and .png."""
    from espnet_distill.analysis.plots import plot_matrix

    for name, ref, ref_label, other, other_label in jobs:
        a_layers, frames = layer_frames(ref, ds, None, seed, max_frames)
        b_layers, _ = layer_frames(other, ds, frames, seed, max_frames)
        matrix = cka_matrix(a_layers, b_layers)
        result = {"name": name, "rows": ref_label, "cols": other_label, "frames": len(frames), "utts": len(ds),
                  "data_dir": data_dir, "cka": matrix}
        (outdir / f"{name}.cka.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_matrix(matrix, ref_label, other_label,
                    f"{name}: linear CKA on {len(frames)} frames of {Path(data_dir).name}", outdir / f"{name}.cka.png")
        best = [max(range(len(matrix)), key=lambda i: matrix[i][j]) for j in range(len(matrix[0]))]
        logger.info("%s: for each %s layer, the most similar %s layer: %s", name, other_label, ref_label, best)
