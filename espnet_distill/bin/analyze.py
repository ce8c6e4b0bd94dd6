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

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from espnet_distill.analysis.cka import cka_matrix
from espnet_distill.asr.experiment import Experiment
from espnet_distill.bin import setup_logging
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.config import ConfigError, read_yaml
from espnet_distill.data.audio import FRAME_WINDOW
from espnet_distill.data.dataset import AudioDataset, BucketBatches, collate
from espnet_distill.student.export import load_student
from espnet_distill.teacher.teacher import TeacherError, build_teacher


@torch.no_grad()
def layer_frames(encode, ds: AudioDataset, frames: torch.Tensor | None, seed: int, max_frames: int
                 ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every layer's hidden states on the valid frames of ``ds``, restricted to ``frames`` (indices
    into the concatenated valid frames), or to ``max_frames`` of them drawn with ``seed``."""
    per_layer: list[list[torch.Tensor]] | None = None
    for idx in BucketBatches(ds.samples, 60.0, shuffle=False):
        b = collate([ds[i] for i in idx])
        hidden, mask = encode(b["wav"], b["lengths"])
        if per_layer is None:
            per_layer = [[] for _ in hidden]
        for layer, h in enumerate(hidden):
            per_layer[layer].append(h[mask].float())
    layers = [torch.cat(x) for x in per_layer]
    if frames is None:
        g = torch.Generator().manual_seed(seed)
        n = layers[0].shape[0]
        frames = torch.randperm(n, generator=g)[:max_frames].sort().values
    return [x[frames] for x in layers], frames


def teacher_encode(teacher):
    """The teacher with the students' ``encode(wav, lengths) -> (hidden, mask)`` interface."""
    def encode(wav, lengths):
        out = teacher(wav, lengths)
        return out.hidden, out.mask
    return encode


def plot(matrix: list[list[float]], rows: str, cols: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(matrix[0]), 1.0 + 0.4 * len(matrix)))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    ax.set_xlabel(f"{cols} layer")
    ax.set_ylabel(f"{rows} layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="linear CKA")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def asr_student(exp: Path):
    """(fine-tuned upstream, distilled student checkpoint) of an ESPnet experiment of ours."""
    from espnet_distill.asr.task import load_model

    experiment = Experiment.read(exp)
    ckpt = experiment.student_checkpoint
    if not ckpt:
        raise ConfigError(f"{exp}: not an ESPnet experiment with a distilled frontend")
    model, _ = load_model(exp / "config.yaml", experiment.model_file(), "cpu")
    return model.frontend.upstream.eval(), ckpt


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="analyze", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="teacher YAML (exp/teacher/teacher.yaml); needed with --checkpoint")
    p.add_argument("--checkpoint", nargs="*", default=[], help="students of ours to compare with the teacher")
    p.add_argument("--asr-exp", nargs="*", default=[], help="ESPnet experiments to compare with their distilled student")
    p.add_argument("--data-dir", required=True, help="Kaldi data dir whose audio is analysed (e.g. data/dev)")
    p.add_argument("--outdir", required=True, help="where <name>.cka.json and <name>.cka.png go")
    p.add_argument("--max-utts", type=int, default=100, help="utterances read from the data dir (default 100)")
    p.add_argument("--max-frames", type=int, default=3000, help="frames the CKA is computed on (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the frame sample")
    a = p.parse_args(argv)
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)
    from espnet_distill.data.tables import read_table

    utts = read_table(Path(a.data_dir) / "utt2spk").keys()[: a.max_utts]
    ds = AudioDataset(a.data_dir, max_seconds=None, min_samples=FRAME_WINDOW, utts=utts)
    try:
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
    except (ConfigError, CheckpointError, TeacherError, FileNotFoundError) as e:
        logging.error("%s", e)
        return 1
    for name, ref, ref_label, other, other_label in jobs:
        a_layers, frames = layer_frames(ref, ds, None, a.seed, a.max_frames)
        b_layers, _ = layer_frames(other, ds, frames, a.seed, a.max_frames)
        matrix = cka_matrix(a_layers, b_layers)
        result = {"name": name, "rows": ref_label, "cols": other_label, "frames": len(frames), "utts": len(ds),
                  "data_dir": a.data_dir, "cka": matrix}
        (out / f"{name}.cka.json").write_text(json.dumps(result, indent=2) + "\n")
        plot(matrix, ref_label, other_label, f"{name}: linear CKA on {len(frames)} frames of {Path(a.data_dir).name}",
             out / f"{name}.cka.png")
        best = [max(range(len(matrix)), key=lambda i: matrix[i][j]) for j in range(len(matrix[0]))]
        logging.info("%s: for each %s layer, the most similar %s layer: %s", name, other_label, ref_label, best)
    return 0


if __name__ == "__main__":
    sys.exit(main())
