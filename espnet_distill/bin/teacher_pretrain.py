"""Pretrain a small HuBERT teacher (HuBERT iteration 1, optionally 2) on a Kaldi data dir.

Steps (egs2/TEMPLATE/distill1/distill.sh stage 2 runs them in this order):

    dump    features of one shard: MFCC (+deltas) or a layer of a previous model
            python -m espnet_distill.bin.teacher_pretrain dump --data-dir data/train \\
                --shard 1 --num-shards 2 --out exp/teacher/iter1/feats/train.1.pt [--source ckpt --layer 3]
    kmeans  fit k-means on the train shards and write frame labels for every set
            python -m espnet_distill.bin.teacher_pretrain kmeans --train-feats F1 F2 \\
                --label SET=F1,F2 ... --n-clusters 100 --outdir exp/teacher/iter1
    train   masked-prediction pretraining; writes teacher.pt (our format), curves, summary.json
            python -m espnet_distill.bin.teacher_pretrain train --config conf/teacher/pretrain_small.yaml \\
                --train-dir data/train --valid-dir data/dev --outdir exp/teacher/iter1
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
import yaml

from espnet_distill.teacher import pretrain as pt
from espnet_distill.bin import setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="teacher_pretrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("dump", help="dump features of one shard of a data dir")
    d.add_argument("--data-dir", required=True, help="Kaldi data dir")
    d.add_argument("--out", required=True, help="output .pt file for this shard")
    d.add_argument("--shard", type=int, default=1, help="1-based shard index (the launcher's JOB)")
    d.add_argument("--num-shards", type=int, default=1, help="number of shards")
    d.add_argument("--source", default="mfcc", help="'mfcc' or a HuBERT checkpoint for layer features")
    d.add_argument("--layer", type=int, default=None, help="hidden-state layer of --source (0 = transformer input)")

    k = sub.add_parser("kmeans", help="fit k-means on train features; label every given set")
    k.add_argument("--train-feats", nargs="+", required=True, help="feature shards to fit on")
    k.add_argument("--label", nargs="+", required=True, metavar="SET=F1,F2",
                   help="sets to label: name=comma-separated feature shards; writes OUTDIR/labels.<name>")
    k.add_argument("--n-clusters", type=int, default=100, help="number of clusters")
    k.add_argument("--sample-frames", type=int, default=200000, help="frames sampled to fit k-means")
    k.add_argument("--seed", type=int, default=0, help="random seed")
    k.add_argument("--outdir", required=True, help="writes km.pt, kmeans.json and labels.<set>")

    t = sub.add_parser("train", help="masked-prediction pretraining of a HuBERT")
    t.add_argument("--config", required=True, help="YAML with 'model' (HubertConfig), 'mask' and 'train' sections")
    t.add_argument("--train-dir", required=True, help="Kaldi dir of the training audio")
    t.add_argument("--valid-dir", required=True, help="Kaldi dir for validation (masked-frame accuracy)")
    t.add_argument("--labels-dir", required=True, help="folder with labels.train and labels.valid and kmeans.json")
    t.add_argument("--outdir", required=True, help="experiment folder (checkpoint.pt, teacher.pt, curves, summary.json)")
    t.add_argument("--init", default=None, help="optional HuBERT checkpoint to start from (iteration 2)")
    t.add_argument("--no-resume", action="store_true", help="start over even if OUTDIR/checkpoint.pt exists")
    return p


def cmd_kmeans(a) -> None:
    sample, mean, std, total = pt.sample_feature_shards(a.train_feats, a.sample_frames, a.seed)
    logging.info("k-means: %d of %d frames, %d dims, %d clusters", len(sample), total, sample.shape[1], a.n_clusters)
    km = pt.fit_kmeans(sample, a.n_clusters, a.sample_frames, a.seed, mean, std)
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)
    from espnet_distill.teacher.checkpoints import atomic_save

    atomic_save(km, out / "km.pt")
    stats = {"n_clusters": a.n_clusters, "inertia": km["inertia"], "train_frames": total}
    for spec in a.label:
        name, files = spec.split("=", 1)
        counts = pt.label_shards(files.split(","), km, out / f"labels.{name}")
        stats[f"{name}_majority_class"] = int(counts.argmax())
        stats[f"{name}_majority_rate"] = float(counts.max()) / max(1, int(counts.sum()))
        stats[f"{name}_clusters_used"] = int((counts > 0).sum())
    with open(out / "kmeans.json", "w") as fh:
        json.dump(stats, fh, indent=2)
    logging.info("k-means: %s", stats)


def cmd_train(a) -> None:
    from espnet_distill.analysis.plots import plot_curves
    from espnet_distill.data.dataset import AudioDataset
    from espnet_distill.nn.hubert import HubertConfig, HubertModel
    from espnet_distill.teacher.checkpoints import load_hubert, save_hubert
    from espnet_distill.train.trainer import Trainer, TrainConfig, dist_info

    with open(a.config) as f:
        conf = yaml.safe_load(f)
    for key in ("model", "train"):
        if key not in conf:
            raise SystemExit(f"{a.config}: missing section '{key}'")
    labels_dir = Path(a.labels_dir)
    km_stats = json.loads((labels_dir / "kmeans.json").read_text())
    n_clusters = km_stats["n_clusters"]
    model_conf = dict(conf["model"], num_classes=n_clusters)
    cfg = HubertConfig.from_dict(model_conf)
    torch.manual_seed(conf["train"].get("seed", 0))
    model = HubertModel(cfg)
    if a.init:
        init, _ = load_hubert(a.init)
        missing, unexpected = model.load_state_dict(
            {k: v for k, v in init.state_dict().items() if k != "label_embs_concat"}, strict=False)
        logging.info("initialised from %s (not loaded: %s)", a.init, missing)
    train_cfg = TrainConfig.from_dict(conf["train"])
    targets_train = {"km": pt.read_labels(labels_dir / "labels.train")}
    targets_valid = {"km": pt.read_labels(labels_dir / "labels.valid")}
    min_samples = cfg.receptive_field + cfg.hop * conf.get("mask", {}).get("length", 10)
    train_set = AudioDataset(a.train_dir, targets_train, train_cfg.max_utt_seconds, min_samples,
                             cache_audio=train_cfg.cache_audio, skip_bad_audio=train_cfg.skip_bad_audio)
    valid_set = AudioDataset(a.valid_dir, targets_valid, train_cfg.max_utt_seconds, min_samples,
                             cache_audio=train_cfg.cache_audio, skip_bad_audio=train_cfg.skip_bad_audio)
    mask = conf.get("mask", {})
    task = pt.HubertPretrainTask(model, mask.get("prob", 0.8), mask.get("length", 10),
                                 km_stats.get("train_majority_class", 0), mask.get("nomask_weight", 0.0))
    outdir = Path(a.outdir)
    resolved = {"model": cfg.to_dict(), "mask": mask, "data": {"train": a.train_dir, "valid": a.valid_dir,
                                                                  "labels": str(labels_dir)}}
    trainer = Trainer(task, train_set, valid_set, train_cfg, outdir, resolved)
    valid = trainer.fit(resume=not a.no_resume)
    rank, _, _ = dist_info()
    if rank != 0:
        return
    hours = sum(train_set.samples) / 16000 / 3600
    # the majority-class rate of the valid labels under the same masks as the accuracy
    summary = {
        "params": pt.param_count(model),
        "params_without_head": pt.param_count(model) - model.label_embs_concat.numel()
        - sum(p.numel() for p in model.final_proj.parameters()) - model.mask_emb.numel(),
        "train_hours": round(hours, 4),
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
    save_hubert(outdir / "teacher.pt", model, meta={"summary": summary, "kmeans": km_stats})
    plot_curves(outdir / "train_log.jsonl", ["loss", "acc", "majority_rate", "lr"], outdir / "curves.png",
                title=f"HuBERT pretraining ({outdir.name})")
    with open(outdir / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    logging.info("summary: %s", json.dumps(summary))


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    a = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if a.cmd == "dump":
        n = pt.dump_features(a.data_dir, a.out, a.shard, a.num_shards, a.source, a.layer)
        logging.info("%s: %d utterances", a.out, n)
    elif a.cmd == "kmeans":
        cmd_kmeans(a)
    elif a.cmd == "train":
        cmd_train(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
