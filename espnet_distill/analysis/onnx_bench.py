"""The deployment benchmark: the paper-size teacher and students, each as a fine-tuned CTC model (a
head of 32 tokens, random weights: timing does not depend on them), exported by
``bin/export --to sherpa-onnx`` and run by the exported folder's own ``transcribe.py`` in a process of
its own: one thread, batch 1, ms per audio-second, graph size and peak resident memory of that
process, fp32 and int8. ``python -m espnet_distill.bin.benchmark --runtime onnx``.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

logger = logging.getLogger(__name__)

TOKENS_32 = ["<blank>", "<unk>", "<space>", *"abcdefghijklmnopqrstuvwxyz", "'", "-", "<sos/eos>"]


def random_experiment(checkpoint: Path, root: Path, tokens: list[str] = TOKENS_32, head_scale: float = 1.0,
                      seed: int = 0) -> Path:
    """``root/exp``: an ESPnet CTC experiment folder (config.yaml and valid.loss.ave.pth), as stage 5
    leaves one, of the student or teacher ``checkpoint`` as frontend, with random perturbations of
    every weight (the CTC head scaled by ``head_scale``: > 1 gives greedy paths that float rounding
    does not flip)."""
    from espnet_distill.asr.task import ASRTask, register

    root.mkdir(parents=True, exist_ok=True)
    (root / "tokens.txt").write_text("\n".join(tokens) + "\n")
    conf = {"frontend": "distilled", "frontend_conf": {"checkpoint": str(checkpoint), "layer": "weighted"},
            "normalize": None, "encoder": "passthrough", "model_conf": {"ctc_weight": 1.0}, "token_type": "char",
            "best_model_criterion": [["valid", "loss", "min"]]}
    (root / "conf.yaml").write_text(yaml.safe_dump(conf))
    register()
    args = ASRTask.get_parser().parse_args(["--config", str(root / "conf.yaml"), "--token_list",
                                            str(root / "tokens.txt")])
    torch.manual_seed(seed)
    model = ASRTask.build_model(args)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.ctc.ctc_lo.weight.mul_(head_scale)
    exp = root / "exp"
    exp.mkdir(exist_ok=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(dict(vars(args), token_list=list(tokens))))
    torch.save(model.state_dict(), exp / "valid.loss.ave.pth")
    return exp


def time_folder(folder: Path, scp: Path, int8: bool, threads: int = 1) -> dict:
    """The folder's transcribe.py over ``scp`` in a fresh process: its stats.json."""
    stats = scp.parent / f"stats.{folder.name}.{'int8' if int8 else 'fp32'}.json"
    cmd = [sys.executable, str(folder / "transcribe.py"), "--scp", str(scp), "--out", str(stats.with_suffix(".txt")),
           "--stats", str(stats), "--threads", str(threads), *(["--int8"] if int8 else [])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{folder}/transcribe.py failed: {r.stderr[-1500:]}")
    return json.loads(stats.read_text())


def paper_checkpoints(root: Path) -> list[tuple[str, Path]]:
    """(row name, checkpoint) of the paper-size teacher and students, saved under ``root``."""
    from espnet_distill.analysis.benchmark import paper_students, paper_teacher
    from espnet_distill.student.export import save_student
    from espnet_distill.teacher.checkpoints import save_hubert

    teacher = paper_teacher()
    save_hubert(root / "teacher.pt", teacher.model)
    out = [(teacher.name, root / "teacher.pt")]
    for name, label, _, student in paper_students(teacher):
        save_student(root / f"{name}.pt", student)
        out.append((label, root / f"{name}.pt"))
    return out


def onnx_table(seconds: float = 8.0, repeats: int = 5, threads: int = 1, workdir: str | None = None,
               models: list[tuple[str, Path]] | None = None) -> tuple[list[dict], str]:
    """Rows and the markdown table of the deployment benchmark (module docstring): each model of
    ``models`` (default: the paper-size ones) on ``repeats`` utterances of ``seconds`` of noise."""
    import soundfile as sf

    from espnet_distill.asr.onnx_export import export_asr

    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    root = Path(workdir or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(repeats):
        sf.write(root / f"{i}.flac", (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
        lines.append(f"u{i} {root / f'{i}.flac'}")
    scp = root / "wav.scp"
    scp.write_text("\n".join(lines) + "\n")
    rows = []
    for name, ckpt in models or paper_checkpoints(root):
        logger.info("deployment benchmark: %s", name)
        folder = root / f"onnx_{ckpt.stem}"
        export_asr(random_experiment(ckpt, root / f"exp_{ckpt.stem}"), folder, overwrite=True)
        kind = json.loads((folder / "export.json").read_text())["kind"]
        for int8 in (False, True):
            s = time_folder(folder, scp, int8, threads)
            rows.append({"name": name, "graph": "int8" if int8 else "fp32", "kind": kind, "runtime": s["runtime"],
                         "ms_per_audio_second": 1e3 * s["decode_seconds"] / s["audio_seconds"],
                         "mb": s["model_bytes"] / 1e6, "peak_rss_mb": s["peak_rss_mb"], "threads": threads,
                         "utterances": s["utterances"], "seconds": seconds})
    if tmp is not None:
        tmp.cleanup()
    base = next((r["ms_per_audio_second"] for r in rows if "teacher" in r["name"] and r["graph"] == "fp32"), None)
    table = ["| model | graph | runtime | ms per audio-s (1 thread, batch 1) | speed-up vs fp32 teacher | MB | "
             "peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        r["speedup_vs_teacher_fp32"] = base / r["ms_per_audio_second"] if base else None
        table.append(f"| {r['name']} | {r['graph']} | {r['runtime']} | {r['ms_per_audio_second']:.1f} | "
                     f"{r['speedup_vs_teacher_fp32']:.2f}x | {r['mb']:.1f} | {r['peak_rss_mb']:.0f} |")
    return rows, "\n".join(table)
