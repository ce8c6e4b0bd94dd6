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


def pretrain(config: str, train_dir: str, valid_dir: str, labels_dir: str, outdir: str, init: str | None = None,
             resume: bool = True) -> dict | None:
    """Masked-prediction pretraining of the config's HuBERT on the k-means labels of ``labels_dir``
    (``labels.train``, ``labels.valid``, ``kmeans.json``), optionally from the weights of ``init``
    (iteration 2). Writes ``teacher.pt`` (our format) and ``summary.json`` into ``outdir`` and
    returns the summary (None on ranks other than 0)."""
    import json
    import logging
    from pathlib import Path

    from espnet_distill.data.audio import SAMPLE_RATE
    from espnet_distill.teacher import kmeans
    from espnet_distill.teacher.checkpoints import load_hubert, save_hubert
    from espnet_distill.train.trainer import Trainer, dist_info

    conf = PretrainConfig.load(config)
    labels = Path(labels_dir)
    km_stats = json.loads((labels / "kmeans.json").read_text())
    n_clusters = km_stats["n_clusters"]
    cfg = conf.hubert_config(n_clusters)
    torch.manual_seed(conf.train.seed)
    model = HubertModel(cfg)
    if init:
        start, _ = load_hubert(init)
        missing, _ = model.load_state_dict(
            {k: v for k, v in start.state_dict().items() if k != "label_embs_concat"}, strict=False)
        logging.info("initialised from %s (not loaded: %s)", init, missing)
    targets = ({"km": kmeans.read_labels(labels / "labels.train")}, {"km": kmeans.read_labels(labels / "labels.valid")})
    min_samples = cfg.receptive_field + cfg.hop * conf.mask.length
    train_set, valid_set = conf.train.datasets(train_dir, valid_dir, targets, min_samples)
    task = HubertPretrainTask(model, conf.mask, km_stats.get("train_majority_class", 0))
    out = Path(outdir)
    resolved = {"model": cfg.to_dict(), "mask": conf.to_dict()["mask"],
                "data": {"train": train_dir, "valid": valid_dir, "labels": str(labels)}}
    trainer = Trainer(task, train_set, valid_set, conf.train, out, resolved)
    valid = trainer.fit(resume=resume)
    if dist_info()[0] != 0:
        return None
    params = sum(p.numel() for p in model.parameters())
    summary = {
        "params": params,
        "params_without_head": params - model.label_embs_concat.numel()
        - sum(p.numel() for p in model.final_proj.parameters()) - model.mask_emb.numel(),
        "train_hours": round(sum(train_set.samples) / SAMPLE_RATE / 3600, 4),
        "train_utts": len(train_set),
        "steps": trainer.step,
        "kmeans_clusters": n_clusters,
        "kmeans_inertia": km_stats["inertia"],
        "dev_masked_acc": valid.get("acc"),
        "dev_majority_rate": valid.get("majority_rate"),  # train's majority class, on dev's masked frames
        "dev_own_majority_rate": km_stats.get("valid_majority_rate"),  # dev's own most frequent class, all frames
        "dev_acc_all_frames": valid.get("acc_all_frames"),
        "dev_loss": valid.get("loss"),
    }
    save_hubert(out / "teacher.pt", model, meta={"summary": summary, "kmeans": km_stats})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    logging.info("summary: %s", json.dumps(summary))
    return summary

