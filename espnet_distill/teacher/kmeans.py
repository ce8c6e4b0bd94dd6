"""The frame labels a HuBERT teacher is pretrained on (recipe stage 2, before training).

One function per step, as fairseq's simple_kmeans scripts:

1. :func:`dump_features` - MFCC + deltas + delta-deltas at 50 Hz (25 ms window, 20 ms hop,
   so frame t covers the same samples as the CNN's frame t), or the hidden states of a
   layer of a previous iteration's model; written per shard.
2. :func:`fit_kmeans` - global CMVN + mini-batch k-means on a sample of frames.
3. :func:`assign_labels` / :func:`label_shards` - nearest centroid per frame, written as a
   Kaldi-style table (:func:`read_labels` reads it back).

The masked-prediction training on these labels is :mod:`espnet_distill.train.pretrain`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from espnet_distill.checkpoint_io import atomic_path, atomic_save, safe_load
from espnet_distill.data.audio import SAMPLE_RATE
from espnet_distill.data.tables import read_table, shard_utts, write_table
from espnet_distill.data.utterances import iter_data_dir_audio
from espnet_distill.teacher.checkpoints import load_hubert

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- features


def mfcc_frames(wav: torch.Tensor) -> torch.Tensor:
    """(L,) 16 kHz waveform -> (T, 39) MFCC + deltas + delta-deltas, T = floor((L - 400) / 320) + 1."""
    import torchaudio

    m = torchaudio.compliance.kaldi.mfcc(
        wav[None] * 32768, sample_frequency=SAMPLE_RATE, frame_length=25.0, frame_shift=20.0, num_ceps=13,
        num_mel_bins=23, dither=0.0, snip_edges=True, use_energy=False,
    )  # (T, 13)
    d1 = torchaudio.functional.compute_deltas(m.T[None])[0]
    d2 = torchaudio.functional.compute_deltas(d1[None])[0]
    return torch.cat([m, d1.T, d2.T], dim=1)


@torch.no_grad()
def dump_features(data_dir: str | os.PathLike, out: str | os.PathLike, shard: int = 1, num_shards: int = 1,
                  source: str = "mfcc", layer: int | None = None) -> int:
    """Write ``{"utts", "lengths", "feats" (sum T, D)}`` for one shard of a data dir.

    ``source``: "mfcc", or the path of a HuBERT checkpoint whose ``layer`` hidden states are used.
    """
    from tqdm import tqdm

    utts = shard_utts(read_table(Path(data_dir) / "utt2spk").keys(), shard, num_shards)
    model = None
    if source != "mfcc":
        model, _ = load_hubert(source)
        model.eval()
        if layer is None or not 0 <= layer <= model.cfg.num_layers:
            raise ValueError(f"feature layer must be in 0..{model.cfg.num_layers} for {source}, got {layer}")
    names, lengths, feats = [], [], []
    for utt, wav in tqdm(iter_data_dir_audio(data_dir, utts=utts), total=len(utts),
                         desc=f"features {shard}/{num_shards}"):
        x = torch.from_numpy(wav)
        if model is None:
            f = mfcc_frames(x)
        else:
            hidden, _ = model(x[None], torch.tensor([len(x)]), num_layers=layer)
            f = hidden[layer][0]
        names.append(utt)
        lengths.append(f.shape[0])
        feats.append(f.float())
    atomic_save({"utts": names, "lengths": torch.tensor(lengths), "feats": torch.cat(feats)}, out)
    return len(names)


def _open_shard(path: str | os.PathLike) -> dict:
    """A feature shard with its tensors memory-mapped (nothing is read until it is indexed)."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        d = safe_load(path)  # the clear one-line error
    for key in ("utts", "lengths", "feats"):
        if key not in d:
            raise ValueError(f"{path}: not a feature shard (no '{key}')")
    return d


def load_feature_shards(paths: list[str | os.PathLike]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """All frames of the shards in memory (for small sets: validation, tests)."""
    utts, lengths, feats = [], [], []
    for p in paths:
        d = _open_shard(p)
        utts += d["utts"]
        lengths.append(d["lengths"])
        feats.append(d["feats"].clone())
    return utts, torch.cat(lengths), torch.cat(feats)


def sample_feature_shards(paths: list[str | os.PathLike], sample_frames: int, seed: int = 0
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """k-means input from shards of any total size, one memory-mapped shard at a time (fairseq's
    HuBERT recipe samples a portion of the frames the same way): the per-dimension mean and std
    over all frames, and ``sample_frames`` frames drawn uniformly without replacement (all of
    them when there are fewer). Returns (sample, mean, std, total frames)."""
    sizes, total, s1, s2 = [], 0, 0.0, 0.0
    for p in paths:
        f = _open_shard(p)["feats"]
        sizes.append(len(f))
        total += len(f)
        for i in range(0, len(f), 200_000):
            chunk = f[i:i + 200_000].double()
            s1 = s1 + chunk.sum(0)
            s2 = s2 + (chunk * chunk).sum(0)
    if total == 0:
        raise ValueError(f"no frames in {len(paths)} feature shards")
    mean = (s1 / total).float()
    std = ((s2 - s1 * s1 / total) / max(1, total - 1)).clamp(min=0).sqrt().float().clamp(min=1e-5)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, sample_frames, replace=False)) if total > sample_frames else np.arange(total)
    out, offset = [], 0
    for p, n in zip(paths, sizes):
        idx = pick[(pick >= offset) & (pick < offset + n)] - offset
        if len(idx):
            out.append(_open_shard(p)["feats"][torch.from_numpy(idx)].float())
        offset += n
    return torch.cat(out), mean, std, total


# ----------------------------------------------------------------------------- k-means


def fit_kmeans(feats: torch.Tensor, n_clusters: int, sample_frames: int = 200_000, seed: int = 0,
               mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> dict:
    """Mini-batch k-means on CMVN-normalised frames (``mean``/``std`` given, or those of ``feats``).
    Returns ``{"centers", "mean", "std", "inertia"}`` (inertia: mean squared distance of the
    fitted frames to their centroid)."""
    from sklearn.cluster import MiniBatchKMeans

    if mean is None or std is None:
        mean, std = feats.mean(0), feats.std(0).clamp(min=1e-5)
    x = ((feats - mean) / std).numpy()
    rng = np.random.default_rng(seed)
    if len(x) > sample_frames:
        x = x[rng.choice(len(x), sample_frames, replace=False)]
    if len(x) < n_clusters:
        raise ValueError(f"only {len(x)} frames to fit {n_clusters} clusters; use more audio or fewer clusters")
    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, batch_size=10_000, n_init=3,
                         max_no_improvement=50, init="k-means++", reassignment_ratio=0.0)
    km.fit(x)
    return {"centers": torch.from_numpy(km.cluster_centers_).float(), "mean": mean, "std": std,
            "inertia": float(km.inertia_ / len(x))}


def assign_labels(feats: torch.Tensor, km: dict, chunk: int = 50_000) -> torch.Tensor:
    """(N, D) frames -> (N,) nearest-centroid labels."""
    x = (feats - km["mean"]) / km["std"]
    out = []
    for i in range(0, len(x), chunk):
        out.append(torch.cdist(x[i:i + chunk], km["centers"]).argmin(1))
    return torch.cat(out)


def write_labels(path: str | os.PathLike, utts: list[str], lengths: torch.Tensor, labels: torch.Tensor) -> None:
    rows, off = [], 0
    for u, n in zip(utts, lengths.tolist()):
        rows.append((u, " ".join(map(str, labels[off: off + n].tolist()))))
        off += n
    write_table(path, rows)


def label_shards(paths: list[str | os.PathLike], km: dict, out: str | os.PathLike) -> torch.Tensor:
    """Nearest-centroid labels of every frame of the shards, one memory-mapped shard at a time,
    appended to ``out`` (a Kaldi-style table, written to a temporary file and renamed at the end).
    Returns the per-cluster frame counts."""
    from tqdm import tqdm

    counts = torch.zeros(len(km["centers"]), dtype=torch.long)
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "w") as fh:
        for p in tqdm(paths, desc=f"labels {out.name}", unit="shard", disable=len(paths) < 4):
            d = _open_shard(p)
            labels = assign_labels(d["feats"], km)
            counts += torch.bincount(labels, minlength=len(counts))
            off = 0
            for u, n in zip(d["utts"], d["lengths"].tolist()):
                fh.write(f"{u} {' '.join(map(str, labels[off: off + n].tolist()))}\n")
                off += n
    return counts


def read_labels(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """utt -> frame labels (int16: 960 h of 50 Hz labels take 350 MB, not 1.4 GB)."""
    return {k: np.array(v.split(), dtype=np.int16) for k, v in read_table(path).items}


def fit_and_label(train_feats: list[str], label_sets: dict[str, list[str]], outdir: str | os.PathLike,
                  n_clusters: int, sample_frames: int, seed: int) -> dict:
    """Fit k-means on ``sample_frames`` frames of the ``train_feats`` shards and label every set of
    ``label_sets`` ({name: shards}): writes ``km.pt``, ``labels.<name>`` and ``kmeans.json`` (the
    returned stats: clusters, inertia, and per set its majority class, that class's share and the
    clusters used) into ``outdir``."""
    import json

    sample, mean, std, total = sample_feature_shards(train_feats, sample_frames, seed)
    logger.info("k-means: %d of %d frames, %d dims, %d clusters", len(sample), total, sample.shape[1], n_clusters)
    km = fit_kmeans(sample, n_clusters, sample_frames, seed, mean, std)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(km, out / "km.pt")
    stats = {"n_clusters": n_clusters, "inertia": km["inertia"], "train_frames": total}
    for name, files in label_sets.items():
        counts = label_shards(files, km, out / f"labels.{name}")
        stats[f"{name}_majority_class"] = int(counts.argmax())
        stats[f"{name}_majority_rate"] = float(counts.max()) / max(1, int(counts.sum()))
        stats[f"{name}_clusters_used"] = int((counts > 0).sum())
    (out / "kmeans.json").write_text(json.dumps(stats, indent=2))
    logger.info("k-means: %s", stats)
    return stats

