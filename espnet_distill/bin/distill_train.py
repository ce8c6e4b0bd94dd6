"""Distill a student from a teacher (recipe stages 3 and 4).

    python -m espnet_distill.bin.distill_train --config conf/distill/dt_cnn.yaml \\
        --teacher exp/teacher/teacher.yaml --train-dir data/train --valid-dir data/dev \\
        --outdir exp/distill/dt_cnn

Under torchrun (``torchrun --nproc_per_node N -m espnet_distill.bin.distill_train ...``) each
update's batch is formed whole and shared out over the processes (nccl on GPU, gloo on CPU): any
number of processes trains the same updates.

The config has four sections, and a fifth for pruned students:

    student:  StudentConfig (front-end, width, depth, heads; teacher_* are filled from the teacher)
    init:     {frontend: bool, pos_conv: bool, layers: {student_layer: teacher_layer}}
    distill:  {alpha: L_disc weight, lam: cosine weight in L_reg, fe_adapt_steps: K,
               cache_teacher: bool, cmvn_utts: utterances for the fbank CMVN,
               teacher_precision: fp32 (the authors') | amp (the teacher in the AMP dtype)}
    train:    TrainConfig (max_steps, lr, warmup_ratio, betas, weight_decay, grad_clip,
               max_batch_seconds, amp, ckpt_every, ...)
    prune:    {target_params: parameters of the pruned student (0: no pruning), steps: updates of
               joint distillation and pruning (then train.max_steps of distillation),
               target_warmup: fraction of them over which the target falls, structures: of
               conv, heads, ffn, layers, gate_lr, init_keep}; the student is then the
               teacher's own architecture (its section sets heads and dropout, no size)

Writes OUTDIR/: checkpoint.pt (resumable), config.yaml (resolved), train_log.jsonl,
student.pt (our format), student.distiller_local.pt (CNN students without front-end LN),
curves.png/.json, and summary.json with the students' L1 and cosine to the teacher's
layers on the validation set.
A pruned run first writes OUTDIR/prune/ (the same files for the pruning updates; its
student.pt is the pruned student).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from espnet_distill.bin import input_errors, new_parser, setup_logging
from espnet_distill.config import ConfigError
from espnet_distill.train.distill import DistillRunConfig, distill


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("distill_train", __doc__)
    p.add_argument("--config", required=True,
                   help="student/distillation YAML (sections: student, init, distill, train, prune)")
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
    try:
        summary = distill(conf, a.config, a.teacher, a.train_dir, a.valid_dir, a.outdir, resume=not a.no_resume,
                          init_only=a.init_only)
    except input_errors() as e:  # a config, the teacher, a data dir, an audio file, a checkpoint, a full disk
        logging.error("%s", e)
        return 1
    if summary is not None:
        from espnet_distill.analysis.plots import plot_curves

        out = Path(a.outdir)
        plot_curves(out / "train_log.jsonl", ["loss", "reg", "disc", "fe_l1", "lr"], out / "curves.png",
                    title=f"distillation ({out.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
