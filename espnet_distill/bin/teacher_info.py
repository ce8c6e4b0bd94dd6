"""Load a teacher and say what it is (layers, width, codebook); write it in our format; name it in a
teacher YAML.

    python -m espnet_distill.bin.teacher_info --config conf/teacher/x.yaml [--json OUT] [--export teacher.pt] \\
        [--write-yaml teacher.yaml]
    python -m espnet_distill.bin.teacher_info --checkpoint hubert_base_ls960.pt [--format auto] --export ours.pt

``--config`` takes a conf/teacher/*.yaml (backend local or s3prl); ``--checkpoint`` a local HuBERT
checkpoint of any format this toolkit reads (ours, s3prl's hubert_local, a released fairseq one in
any of its layouts, torchaudio or ESPnet weights, a Hugging Face HubertModel / WavLMModel folder;
read with torch.load(weights_only=True) or safetensors, neither fairseq nor transformers imported).
The JSON's ``layout`` says which layout was read.

Stage 2 runs it on every teacher, so that a wrong path, format or s3prl name fails before any
training starts. With ``--export`` a HuBERT teacher (an s3prl HuBERT upstream is checked against
s3prl's own forward pass) is written in our format, final_proj and the label embeddings kept:
stage 2 writes ``exp/teacher/teacher.pt``, which distillation and the teacher-as-frontend ASR
baseline of stage 5 read. A teacher that is not a HuBERT is not exported: the JSON says why
(``export_error``) and stage 5 leaves out the teacher-as-frontend model. ``--write-yaml`` writes the
teacher YAML every later stage reads: ``backend: local`` with the export's absolute path, or, when
nothing was exported, the given config.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys

import torch

from espnet_distill.bin import input_errors, new_parser, setup_logging
from espnet_distill.config import read_yaml
from espnet_distill.data.audio import SAMPLE_RATE
from espnet_distill.teacher.checkpoints import FORMATS, save_hubert
from espnet_distill.teacher.teacher import TeacherError, build_teacher, local_teacher_yaml


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("teacher_info", __doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="teacher YAML (backend: local | s3prl, path / name, ...)")
    src.add_argument("--checkpoint",
                     help="a local HuBERT checkpoint file or Hugging Face folder, any format (see above)")
    p.add_argument("--format", default="auto", choices=["auto", *sorted(FORMATS)],
                   help="format of --checkpoint (default: detected from its keys)")
    p.add_argument("--json", help="also write the description to this file")
    p.add_argument("--export", metavar="PT", help="write a HuBERT teacher to this file in our format (see above)")
    p.add_argument("--write-yaml", metavar="YAML", help="write the teacher YAML that later stages read (see above)")
    a = p.parse_args(argv)
    try:
        conf = read_yaml(a.config) if a.config else {"backend": "local", "path": a.checkpoint, "format": a.format}
        t = build_teacher(conf)
        out = t(torch.zeros(1, SAMPLE_RATE), torch.tensor([SAMPLE_RATE]))
    except input_errors() as e:
        logging.error("%s: %s", a.config or a.checkpoint, e)
        return 1
    info = {"name": t.name, "layout": t.layout, "num_layers": t.num_layers, "dim": t.dim,
            "has_codebook": t.has_codebook,
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
    if a.write_yaml and "checkpoint" in info:
        local_teacher_yaml(info["checkpoint"], a.write_yaml)
    elif a.write_yaml and a.checkpoint:
        local_teacher_yaml(a.checkpoint, a.write_yaml, a.format)
    elif a.write_yaml:
        shutil.copyfile(a.config, a.write_yaml)
    print(json.dumps(info))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
