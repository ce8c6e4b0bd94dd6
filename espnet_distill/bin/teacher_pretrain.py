"""Pretrain a small HuBERT teacher (HuBERT iteration 1, optionally 2) on a Kaldi data dir.

Steps (recipe stage 2 runs them in this order; CONFIG is the teacher YAML with ``backend:
pretrain``, sections kmeans, mask, model, train: espnet_distill/train/pretrain.py has every key):

    dump    features of one shard: MFCC (+deltas), or layer ``iter2_layer`` of a previous model
            teacher_pretrain dump --config CONFIG --data-dir data/train --shard 1 --num-shards 2 --out F1
    kmeans  fit k-means (the config's kmeans section) on the train shards; label every given set
            teacher_pretrain kmeans --config CONFIG --train-feats F1 F2 --label train=F1,F2 ... --outdir D
    train   masked-prediction pretraining; writes teacher.pt (our format), curves, summary.json
            teacher_pretrain train --config CONFIG --train-dir T --valid-dir V --labels-dir D --outdir D
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_distill.bin import input_errors, new_parser, setup_logging
from espnet_distill.config import ConfigError
from espnet_distill.teacher import kmeans
from espnet_distill.train.pretrain import KMeansConfig, PretrainConfig, pretrain


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("teacher_pretrain", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="dump features of one shard of a data dir")
    d.add_argument("--config", help="teacher YAML (backend: pretrain): iter2_layer, the layer of --source")
    d.add_argument("--data-dir", required=True, help="Kaldi data dir")
    d.add_argument("--out", required=True, help="output .pt file for this shard")
    d.add_argument("--shard", type=int, default=1, help="1-based shard index (the launcher's JOB)")
    d.add_argument("--num-shards", type=int, default=1, help="number of shards")
    d.add_argument("--source", default="mfcc", help="'mfcc' or a HuBERT checkpoint for layer features")
    d.add_argument("--layer", type=int, default=None,
                   help="hidden-state layer of --source (0 = transformer input; default: the config's iter2_layer)")
    k = sub.add_parser("kmeans", help="fit k-means on train features; label every given set")
    k.add_argument("--config", default=None, help="teacher YAML (backend: pretrain): its kmeans section")
    k.add_argument("--train-feats", nargs="+", required=True, help="feature shards to fit on")
    k.add_argument("--label", nargs="+", required=True, metavar="SET=F1,F2",
                   help="sets to label: name=comma-separated feature shards; writes OUTDIR/labels.<name>")
    k.add_argument("--n-clusters", type=int, default=None, help="number of clusters (overrides kmeans.n_clusters)")
    k.add_argument("--sample-frames", type=int, default=None, help="frames to fit on (overrides kmeans.sample_frames)")
    k.add_argument("--seed", type=int, default=None, help="random seed (overrides kmeans.seed)")
    k.add_argument("--outdir", required=True, help="writes km.pt, kmeans.json and labels.<set>")
    t = sub.add_parser("train", help="masked-prediction pretraining of a HuBERT")
    t.add_argument("--config", required=True, help="teacher YAML (backend: pretrain): model, mask and train sections")
    t.add_argument("--train-dir", required=True, help="Kaldi dir of the training audio")
    t.add_argument("--valid-dir", required=True, help="Kaldi dir for validation (masked-frame accuracy)")
    t.add_argument("--labels-dir", required=True, help="folder with labels.train and labels.valid and kmeans.json")
    t.add_argument("--outdir", required=True, help="experiment folder: checkpoint.pt, teacher.pt, curves, summary.json")
    t.add_argument("--init", default=None, help="optional HuBERT checkpoint to start from (iteration 2)")
    t.add_argument("--no-resume", action="store_true", help="start over even if OUTDIR/checkpoint.pt exists")
    return p


def cmd_dump(a) -> None:
    layer = a.layer
    if layer is None and a.source != "mfcc":
        if a.config is None:
            raise ConfigError("dump --source CHECKPOINT needs --layer or --config (its iter2_layer)")
        layer = PretrainConfig.load(a.config).iter2_layer
    n = kmeans.dump_features(a.data_dir, a.out, a.shard, a.num_shards, a.source, layer)
    logging.info("%s: %d utterances", a.out, n)


def cmd_kmeans(a) -> None:
    km_cfg = PretrainConfig.load(a.config).kmeans if a.config else KMeansConfig()
    kmeans.fit_and_label(a.train_feats, {n: f.split(",") for n, f in (spec.split("=", 1) for spec in a.label)},
                         a.outdir, km_cfg.n_clusters if a.n_clusters is None else a.n_clusters,
                         km_cfg.sample_frames if a.sample_frames is None else a.sample_frames,
                         km_cfg.seed if a.seed is None else a.seed)


def cmd_train(a) -> None:
    from espnet_distill.analysis.plots import plot_curves

    if pretrain(a.config, a.train_dir, a.valid_dir, a.labels_dir, a.outdir, a.init, not a.no_resume) is not None:
        plot_curves(Path(a.outdir) / "train_log.jsonl", ["loss", "acc", "majority_rate", "lr"],
                    Path(a.outdir) / "curves.png", title=f"HuBERT pretraining ({Path(a.outdir).name})")


COMMANDS = {"dump": cmd_dump, "kmeans": cmd_kmeans, "train": cmd_train}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    a = build_parser().parse_args(argv)
    try:
        COMMANDS[a.cmd](a)
    except input_errors() as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
