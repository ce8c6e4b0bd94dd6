"""Load a teacher from a conf/teacher/*.yaml and print what it is (layers, width, codebook).

    python -m espnet_distill.bin.teacher_info --config exp/teacher/teacher.yaml [--json OUT]

Stage 2 runs it for teachers that are not pretrained here, so that a wrong path, format
or s3prl name fails before any training starts.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

import torch
import yaml

from espnet_distill.teacher.checkpoints import CheckpointError
from espnet_distill.teacher.teacher import TeacherError, build_teacher
from espnet_distill.bin import setup_logging


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="teacher_info", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="teacher YAML (backend: local | s3prl, path / name, ...)")
    p.add_argument("--json", help="also write the description to this file")
    a = p.parse_args(argv)
    with open(a.config) as f:
        conf = yaml.safe_load(f) or {}
    try:
        t = build_teacher(conf)
        out = t(torch.zeros(1, 16000), torch.tensor([16000]))
    except (TeacherError, CheckpointError) as e:
        logging.error("%s: %s", a.config, e)
        return 1
    info = {"name": t.name, "num_layers": t.num_layers, "dim": t.dim, "has_codebook": t.has_codebook,
            "num_classes": None if out.logits is None else out.logits.shape[-1],
            "params": sum(p.numel() for p in t.parameters()), "frames_per_second": out.hidden[0].shape[1]}
    print(json.dumps(info))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
