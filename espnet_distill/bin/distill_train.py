"""Distill a student from a teacher (recipe stages 3 and 4).

    python -m espnet_distill.bin.distill_train --config conf/distill/dt_cnn.yaml \\
        --teacher exp/teacher/teacher.yaml --train-dir data/train --valid-dir data/dev \\
        --outdir exp/distill/dt_cnn

Under torchrun (``torchrun --nproc_per_node N -m espnet_distill.bin.distill_train ...``) each
update's batch is formed whole and shared out over the processes (nccl on GPU, gloo on CPU): any
number of processes trains the same updates.

The config has four sections:

    student:  StudentConfig (front-end, width, depth, heads; teacher_* are filled from the teacher)
    init:     {frontend: bool, pos_conv: bool, layers: {student_layer: teacher_layer}}
    distill:  {alpha: L_disc weight, lam: cosine weight in L_reg, fe_adapt_steps: K,
               cache_teacher: bool, cmvn_utts: utterances for the fbank CMVN,
               teacher_precision: fp32 (the authors') | amp (the teacher in the AMP dtype)}
    train:    TrainConfig (max_steps, lr, warmup_ratio, betas, weight_decay, grad_clip,
               max_batch_seconds, amp, ckpt_every, ...)

Writes OUTDIR/: checkpoint.pt (resumable), config.yaml (resolved), train_log.jsonl,
student.pt (our format), student.distiller_local.pt (CNN students without front-end LN),
curves.png/.json, and summary.json with the students' L1 and cosine to the teacher's
layers on the validation set.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from espnet_distill.bin import input_errors, setup_logging
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.config import ConfigError, read_yaml
from espnet_distill.data.audio import FRAME_WINDOW
from espnet_distill.data.dataset import collate
from espnet_distill.student.export import export_distiller_local, save_student
from espnet_distill.student.frontend import FbankFrontend, estimate_cmvn
from espnet_distill.teacher.teacher import TeacherError, build_teacher
from espnet_distill.train.distill import DistillRunConfig, DistillTask, build_student
from espnet_distill.train.trainer import Trainer, dist_info


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="distill_train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="student/distillation YAML (sections: student, init, distill, train)")
    p.add_argument("--teacher", required=True, help="teacher YAML (exp/teacher/teacher.yaml after stage 2)")
    p.add_argument("--train-dir", required=True, help="Kaldi data dir of the (unlabelled) training audio")
    p.add_argument("--valid-dir", required=True, help="Kaldi data dir for validation")
    p.add_argument("--outdir", required=True, help="experiment folder")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                   help="override one config value (read as YAML), e.g. --set train.max_steps=200 "
                        "--set distill.alpha=0; repeatable (the recipe's --distill_args passes these)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUTDIR/checkpoint.pt exists")
    p.add_argument("--check-config", action="store_true",
                   help="only read and check the config (with its --set overrides) and stop: the recipe does this "
                        "for every config before a stage moves anything")
    p.add_argument("--init-only", action="store_true",
                   help="write the initialised, undistilled student (fbank CMVN included) and stop: "
                        "the from-scratch baseline of stage 5")
    a = p.parse_args(argv)

    try:
        conf = DistillRunConfig.load(a.config, a.overrides)
    except (ConfigError, ValueError) as e:
        logging.error("%s: %s", a.config, e)
        return 1
    if a.check_config:
        return 0
    dconf, train_cfg = conf.distill, conf.train
    try:
        tconf = read_yaml(a.teacher)
        teacher = build_teacher(tconf)
        if dconf.alpha > 0:
            teacher.require_codebook("L_disc (distill.alpha > 0)")
    except (TeacherError, CheckpointError, ConfigError) as e:
        logging.error("%s: %s", a.teacher, e)
        return 1

    torch.manual_seed(train_cfg.seed)
    try:
        student, init_report = build_student(conf, teacher)
    except (ValueError, TypeError) as e:  # a front-end or head name, a layer map, a shape the teacher cannot feed
        logging.error("%s: %s", a.config, e)
        return 1
    task = DistillTask(student, teacher, dconf.alpha, dconf.lam, dconf.fe_adapt_steps, dconf.cache_teacher,
                       dconf.teacher_precision)
    try:
        return _train(a, conf, teacher, tconf, student, init_report, task)
    except input_errors() as e:  # a data dir, an audio file, a checkpoint to resume, a full disk
        logging.error("%s", e)
        return 1


def _train(a, conf, teacher, tconf, student, init_report, task) -> int:
    dconf, train_cfg = conf.distill, conf.train
    min_samples = max(teacher.receptive_field, FRAME_WINDOW)
    train_set, valid_set = train_cfg.datasets(a.train_dir, a.valid_dir, min_samples=min_samples)

    if isinstance(student.frontend, FbankFrontend):
        n = dconf.cmvn_utts
        idx = list(range(0, len(train_set), max(1, len(train_set) // n)))[:n]
        batches = (collate([train_set[i] for i in idx[j:j + 16]]) for j in range(0, len(idx), 16))
        mean, std, frames = estimate_cmvn(student.frontend, batches)
        student.frontend.set_cmvn(mean, std)
        logging.info("fbank CMVN from %d frames of %d utterances", frames, len(idx))

    counts = student.param_counts()
    logging.info("student: %s", counts)
    if a.init_only:
        Path(a.outdir).mkdir(parents=True, exist_ok=True)
        save_student(Path(a.outdir) / "student.pt", student.cpu(), {"params": counts, "steps": 0, "init_only": True})
        logging.info("wrote the undistilled student to %s", Path(a.outdir) / "student.pt")
        return 0
    resolved = {"student": student.cfg.to_dict(), "init": conf.init.to_dict(),
                "distill": dconf.to_dict(),
                "teacher": tconf, "data": {"train": a.train_dir, "valid": a.valid_dir}}
    outdir = Path(a.outdir)
    trainer = Trainer(task, train_set, valid_set, train_cfg, outdir, resolved)
    valid = trainer.fit(resume=not a.no_resume)
    rank, _, _ = dist_info()
    if rank != 0:
        return 0
    student.cpu()
    meta = {"params": counts, "steps": trainer.step, "valid": valid, "teacher": tconf}
    save_student(outdir / "student.pt", student, meta)
    exported = None
    try:
        export_distiller_local(student, outdir / "student.distiller_local.pt")
        exported = str(outdir / "student.distiller_local.pt")
    except CheckpointError as e:
        logging.info("not exported to distiller_local: %s", e)
    from espnet_distill.analysis.plots import plot_curves

    keys = ["loss", "reg", "disc", "fe_l1", "lr"]
    plot_curves(outdir / "train_log.jsonl", keys, outdir / "curves.png", title=f"distillation ({outdir.name})")
    per_layer = {k: v for k, v in valid.items() if k.startswith(("l1_", "cos_"))}
    summary = {"params": counts, "steps": trainer.step, "init_copied": len(init_report["copied"]),
               "valid": valid, "valid_per_layer": per_layer, "distiller_local": exported}
    with open(outdir / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    logging.info("summary: %s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
