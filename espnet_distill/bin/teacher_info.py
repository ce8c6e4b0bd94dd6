"""Load a teacher from a conf/teacher/*.yaml and print what it is (layers, width, codebook).

    python -m espnet_distill.bin.teacher_info --config conf/teacher/x.yaml [--json OUT] [--export teacher.pt]

Stage 2 runs it on every teacher, so that a wrong path, format or s3prl name fails before
any training starts. With ``--export`` a HuBERT teacher (any local checkpoint format, or an
s3prl HuBERT upstream, checked against s3prl's own forward pass) is written in our format:
stage 2 writes ``exp/teacher/teacher.pt``, which distillation and the teacher-as-frontend
ASR baseline of stage 5 read. A teacher that is not a HuBERT is not exported: the JSON says
why (``export_error``) and stage 5 leaves out the teacher-as-frontend model.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

import torch
import yaml

from espnet_distill.bin import setup_logging
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.data.audio import SAMPLE_RATE
from espnet_distill.teacher.checkpoints import save_hubert
from espnet_distill.teacher.teacher import TeacherError, build_teacher


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="teacher_info", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="teacher YAML (backend: local | s3prl, path / name, ...)")
    p.add_argument("--json", help="also write the description to this file")
    p.add_argument("--export", metavar="PT", help="write a HuBERT teacher to this file in our format (see above)")
    a = p.parse_args(argv)
    with open(a.config) as f:
        conf = yaml.safe_load(f) or {}
    try:
        t = build_teacher(conf)
        out = t(torch.zeros(1, SAMPLE_RATE), torch.tensor([SAMPLE_RATE]))
    except (TeacherError, CheckpointError) as e:
        logging.error("%s: %s", a.config, e)
        return 1
    info = {"name": t.name, "num_layers": t.num_layers, "dim": t.dim, "has_codebook": t.has_codebook,
            "num_classes": None if out.logits is None else out.logits.shape[-1],
            "params": sum(p.numel() for p in t.parameters()), "frames_per_second": out.hidden[0].shape[1]}
    if a.export:
        try:
            save_hubert(a.export, t.to_hubert(), meta={"teacher_config": conf})
            info["checkpoint"] = a.export
            logging.info("teacher written to %s", a.export)
        except TeacherError as e:
            info["export_error"] = str(e)
            logging.warning("teacher not written to %s: %s", a.export, e)
    print(json.dumps(info))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
