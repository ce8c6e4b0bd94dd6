"""The HuBERT pretraining task (recipe stage 2, backend ``pretrain``) and its typed config.

A teacher YAML with ``backend: pretrain`` is read once, by :meth:`PretrainConfig.load`: its
sections ``kmeans`` (:class:`KMeansConfig`), ``mask`` (:class:`MaskConfig`), ``model``
(:class:`~espnet_distill.nn.hubert.HubertConfig` less ``num_classes``, which the k-means step
sets) and ``train`` (:class:`~espnet_distill.train.trainer.TrainConfig`), plus ``iterations``
and ``iter2_layer``. The frame labels come from :mod:`espnet_distill.teacher.kmeans`.

:class:`HubertPretrainTask` is a trainer task: spans of ``mask.length`` frames start with
probability ``mask.prob / mask.length`` per frame (fairseq's rule), and the loss is
:func:`espnet_distill.losses.masked_prediction_loss` over cos(final_proj(h), e_c) / tau logits.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from espnet_distill.config import ConfigError, check_range, from_dict, read_yaml
from espnet_distill.data.dataset import IGNORE
from espnet_distill.losses import Sum, masked_prediction_loss
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.nn.masking import span_mask
from espnet_distill.train.trainer import TrainConfig


@dataclass
class KMeansConfig:
    """The ``kmeans:`` section: the clusters the teacher learns to predict."""

    n_clusters: int = 100  # clusters (HuBERT Base: 100 in iteration 1, 500 in iteration 2)
    sample_frames: int = 200_000  # frames sampled to fit the k-means
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("kmeans", "n_clusters", self.n_clusters, self.n_clusters >= 2, "at least 2")
        check_range("kmeans", "sample_frames", self.sample_frames, self.sample_frames >= 1, "at least 1")


@dataclass
class MaskConfig:
    """The ``mask:`` section: span masking of the pretraining input."""

    prob: float = 0.8  # expected fraction of masked frames (spans may overlap)
    length: int = 10  # frames per span
    nomask_weight: float = 0.0  # weight of the loss on unmasked frames (fairseq's pred_nomask_weight)

    def __post_init__(self) -> None:
        check_range("mask", "prob", self.prob, 0 <= self.prob <= 1, "in [0, 1]")
        check_range("mask", "length", self.length, self.length >= 1, "at least 1")
        check_range("mask", "nomask_weight", self.nomask_weight, self.nomask_weight >= 0, "0 or more")


@dataclass
class PretrainConfig:
    """A teacher YAML with ``backend: pretrain``, every section typed."""

    model: dict  # HubertConfig fields except num_classes
    train: TrainConfig
    backend: str = "pretrain"
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    iterations: int = 1  # 2: k-means on layer iter2_layer of iteration 1's model, then train again
    iter2_layer: int = 4

    def __post_init__(self) -> None:
        check_range("teacher", "backend", self.backend, self.backend == "pretrain", "pretrain")
        check_range("teacher", "iterations", self.iterations, self.iterations in (1, 2), "1 or 2")
        self.hubert_config(self.kmeans.n_clusters)  # the model's keys and types, checked now

    @classmethod
    def from_dict(cls, conf: dict, what: str = "teacher config") -> "PretrainConfig":
        for key in ("model", "train"):
            if key not in (conf or {}):
                raise ConfigError(f"{what}: missing section '{key}'")
        return from_dict(cls, conf, what)

    @classmethod
    def load(cls, path) -> "PretrainConfig":
        """The config of a YAML file; errors name the file."""
        return cls.from_dict(read_yaml(path), str(path))

    def hubert_config(self, num_classes: int) -> HubertConfig:
        return HubertConfig.from_dict(dict(self.model, num_classes=num_classes))

    def to_dict(self) -> dict:
        return asdict(self)


def align_labels(labels: torch.Tensor, t: int) -> torch.Tensor:
    """Crop or pad (with IGNORE) (B, T') frame labels to T frames."""
    if labels.shape[1] >= t:
        return labels[:, :t]
    return F.pad(labels, (0, t - labels.shape[1]), value=IGNORE)


class HubertPretrainTask:
    """Masked prediction of k-means labels (trainer task: see train/trainer.py)."""

    def __init__(self, model: HubertModel, mask: MaskConfig | None = None, majority_class: int = 0):
        self.model = model
        self.mask = mask or MaskConfig()
        self.majority_class = majority_class

    def _forward(self, batch: dict, generator: torch.Generator | None = None):
        wav, lengths = batch["wav"], batch["lengths"]
        frames = self.model.frame_lengths(lengths)
        t = int(frames.max())
        # on the device (no sync); validation's fixed masks come from a CPU generator
        time_mask = span_mask(frames if generator is None else frames.cpu(), t, self.mask.prob, self.mask.length,
                              generator).to(wav.device)
        hidden, valid = self.model(wav, lengths, time_mask=time_mask)
        labels = align_labels(batch["km"].long(), t)
        sel = time_mask & valid & (labels != IGNORE)
        logits = self.model.logits(hidden[-1][sel])  # (N, C)
        return logits, labels[sel], hidden, valid, labels, time_mask

    def training_step(self, batch: dict, step: int) -> dict[str, Sum]:
        """``loss`` (a differentiable Sum: fairseq's criterion) and the detached ``acc`` (and
        ``loss_nomask`` / ``acc_nomask`` with a weight on the unmasked frames)."""
        logits, target, hidden, valid, labels, time_mask = self._forward(batch)
        logits_u = target_u = None
        if self.mask.nomask_weight > 0:
            sel = ~time_mask & valid & (labels != IGNORE)
            logits_u, target_u = self.model.logits(hidden[-1][sel]), labels[sel]
        loss, stats = masked_prediction_loss(logits, target, logits_u, target_u, self.mask.nomask_weight)
        return {"loss": loss, **stats}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, tuple[float, float]]:
        g = torch.Generator().manual_seed(1234)  # the same masks at every validation
        logits, target, hidden, valid, labels, _ = self._forward(batch, g)
        n = target.numel()
        unmasked_sel = valid & (labels != IGNORE)
        um_logits = self.model.logits(hidden[-1][unmasked_sel])
        return {
            "loss": (float(F.cross_entropy(logits, target, reduction="sum")), n),
            "acc": (float((logits.argmax(-1) == target).sum()), n),
            "majority_rate": (float((target == self.majority_class).sum()), n),
            "acc_all_frames": (float((um_logits.argmax(-1) == labels[unmasked_sel]).sum()), int(unmasked_sel.sum())),
        }
