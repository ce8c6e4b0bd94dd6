"""Layer similarity of distilled (and fine-tuned) students to their teacher: linear CKA between
every layer of two models on the valid frames of a data dir, as a heatmap PNG and a JSON.

    python -m espnet_distill.bin.analyze --teacher exp/teacher/teacher.yaml \\
        --checkpoint exp/distill/dt_cnn/student.pt [...] --data-dir data/dev --outdir exp/analysis

For each ``--checkpoint`` (a student of ours) it writes OUTDIR/<name>.cka.json and .png with the
CKA of every teacher layer (rows, 0 = the transformer's input) against every student layer
(columns). ``--asr-exp exp/asr/<model>`` (repeatable) compares an ESPnet model fine-tuned from a
student with that student before fine-tuning (the checkpoint named in its config.yaml): how far
fine-tuning moved each layer. Frames: the valid frames of the first ``--max-utts`` utterances,
``--max-frames`` of them drawn with ``--seed`` (the CKA needs an (n, n) Gram matrix per layer).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from espnet_distill.analysis.cka import asr_student, compare_models, teacher_encode
from espnet_distill.bin import input_errors, new_parser, setup_logging
from espnet_distill.config import ConfigError, read_yaml
from espnet_distill.data.audio import FRAME_WINDOW
from espnet_distill.data.dataset import AudioDataset
from espnet_distill.data.tables import read_table
from espnet_distill.student.export import load_student
from espnet_distill.teacher.teacher import build_teacher


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("analyze", __doc__)
    p.add_argument("--teacher", help="teacher YAML (exp/teacher/teacher.yaml); needed with --checkpoint")
    p.add_argument("--checkpoint", nargs="*", default=[], help="students of ours to compare with the teacher")
    p.add_argument("--asr-exp", nargs="*", default=[],
                   help="ESPnet experiments to compare with their distilled student")
    p.add_argument("--data-dir", required=True, help="Kaldi data dir whose audio is analysed (e.g. data/dev)")
    p.add_argument("--outdir", required=True, help="where <name>.cka.json and <name>.cka.png go")
    p.add_argument("--max-utts", type=int, default=100, help="utterances read from the data dir (default 100)")
    p.add_argument("--max-frames", type=int, default=3000, help="frames the CKA is computed on (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the frame sample")
    a = p.parse_args(argv)
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        utts = read_table(Path(a.data_dir) / "utt2spk").keys()[: a.max_utts]
        ds = AudioDataset(a.data_dir, max_seconds=None, min_samples=FRAME_WINDOW, utts=utts)
        jobs = []  # (name, reference encode, reference label, other encode, other label)
        if a.checkpoint:
            if not a.teacher:
                raise ConfigError("--checkpoint needs --teacher")
            teacher = build_teacher(read_yaml(a.teacher))
            for c in a.checkpoint:
                student, _ = load_student(c)
                jobs.append((Path(c).parent.name, teacher_encode(teacher), "teacher", student.encode, "student"))
        for e in a.asr_exp:
            tuned, ckpt = asr_student(Path(e))
            student, _ = load_student(ckpt)
            jobs.append((f"{Path(e).name}.finetuned", student.encode, "distilled", tuned.encode, "fine-tuned"))
        compare_models(jobs, ds, out, a.data_dir, a.seed, a.max_frames)
    except (*input_errors(), FileNotFoundError) as e:  # a data dir, an audio file, the teacher, a checkpoint
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
