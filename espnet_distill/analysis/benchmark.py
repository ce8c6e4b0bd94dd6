"""Parameters, MACs and measured forward time per second of audio, per model part.

A model is benchmarked as two callables: its front-end (waveform -> frames) and its encoder
(frames -> hidden states), so that front-end, encoder and total costs are reported apart.
MACs come from torch's FLOP counter (matmuls, convolutions, attention; MACs = FLOPs / 2).
Times are medians of repeated runs on the current device, per second of input audio.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from espnet_distill.data.audio import SAMPLE_RATE, cnn_frames
from espnet_distill.nn.hubert import HubertConfig, HubertModel


@dataclass
class Bench:
    name: str
    module: nn.Module  # the whole model (moved to the device, put in eval mode)
    frontend: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    encoder: Callable[[torch.Tensor, torch.Tensor], object]
    params: dict[str, int]
    encoder_key: str = ""  # models with the same key share an encoder shape (for "vs CNN" ratios)
    frontend_kind: str = "cnn"
    checkpoint: str | None = None
    int8_of: str | None = None  # int8 rows: the name of the float row (same weights, same MACs)


def count(m: nn.Module | None) -> int:
    return sum(p.numel() for p in m.parameters()) if m is not None else 0


def bench_from_hubert(name: str, model) -> Bench:
    """A HuBERT (teacher) model: front-end = CNN + LN + projection; encoder = pos conv + layers."""
    heads = count(getattr(model, "final_proj", None)) + (model.label_embs_concat.numel() if model.has_codebook else 0)
    fe = count(model.feature_extractor) + count(model.layer_norm) + count(model.post_extract_proj)
    c = model.cfg
    return Bench(name, model, model.features, lambda x, m: model.encoder(x, m),
                 {"frontend": fe, "encoder": count(model.encoder), "heads": heads},
                 f"{c.num_layers}x{c.embed_dim}x{c.ffn_dim}", "cnn")


def bench_from_student(name: str, student) -> Bench:
    p = student.param_counts()
    c = student.cfg
    shape = f"{c.num_layers}x{c.dim}x{c.ffn_dim}"
    if c.layer_heads is not None or c.layer_ffn_dims is not None:  # pruned: sizes per layer
        shape = f"{c.num_layers}x{c.dim} heads {c.layer_heads} FFN {c.layer_ffn_dims}"
    return Bench(name, student, student.frontend, lambda x, m: student.encoder(x, m),
                 {"frontend": p["frontend"], "encoder": p["encoder"], "heads": p["heads"]}, shape, c.frontend)


def int8_bench(b: Bench) -> Bench:
    """The same model with int8 linear layers (PyTorch dynamic quantization; CPU only)."""
    from espnet_distill.student.export import quantize_int8
    from espnet_distill.student.model import Student

    q = quantize_int8(b.module)
    qb = bench_from_student(b.name, q) if isinstance(q, Student) else bench_from_hubert(b.name, q)
    # quantized linear layers hide their weights from parameters(): report the float counts
    return Bench(f"{b.name} int8", q, qb.frontend, qb.encoder, dict(b.params), f"{b.encoder_key} int8",
                 b.frontend_kind, b.checkpoint, int8_of=b.name)


@torch.no_grad()
def macs_per_second(b: Bench, seconds: float = 10.0, device: str = "cpu") -> tuple[float, float]:
    """(front-end MACs, encoder MACs) per second of audio, counted on one utterance."""
    from torch.utils.flop_counter import FlopCounterMode

    n = int(seconds * SAMPLE_RATE)
    wav, lengths = torch.randn(1, n, device=device) * 0.1, torch.tensor([n], device=device)
    with FlopCounterMode(display=False) as fc:
        x, m = b.frontend(wav, lengths)
    fe = fc.get_total_flops() / 2 / seconds
    with FlopCounterMode(display=False) as fc:
        b.encoder(x, m)
    return fe, fc.get_total_flops() / 2 / seconds


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def time_per_second(b: Bench, batch: int, seconds: float, repeats: int = 5, device: str = "cpu") -> dict[str, float]:
    """Median seconds of compute per second of audio: front-end, encoder, total (front-end then encoder)."""
    n = int(seconds * SAMPLE_RATE)
    wav = torch.randn(batch, n, device=device) * 0.1
    lengths = torch.full((batch,), n, device=device)
    audio = batch * seconds
    fe_t, enc_t, tot_t = [], [], []
    x, m = b.frontend(wav, lengths)  # warm-up
    b.encoder(x, m)
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        x, m = b.frontend(wav, lengths)
        _sync(device)
        t1 = time.perf_counter()
        b.encoder(x, m)
        _sync(device)
        t2 = time.perf_counter()
        fe_t.append(t1 - t0)
        enc_t.append(t2 - t1)
        tot_t.append(t2 - t0)
    return {"frontend": statistics.median(fe_t) / audio, "encoder": statistics.median(enc_t) / audio,
            "total": statistics.median(tot_t) / audio}


def run(benches: list[Bench], batch_sizes: tuple[int, ...] = (1, 8), seconds: float = 8.0, repeats: int = 5,
        device: str = "cpu", teacher_name: str | None = None) -> tuple[list[dict], str]:
    """Benchmark every model; returns rows and a markdown table with speed-ups."""
    rows = []
    for b in benches:
        # torch's counter does not see quantized matmuls: an int8 row does the float row's MACs
        float_row = next((r for r in rows if r["name"] == b.int8_of), None)
        fe_macs, enc_macs = ((float_row["macs"]["frontend"], float_row["macs"]["encoder"]) if float_row
                             else macs_per_second(b, device=device))
        row = {"name": b.name, "checkpoint": b.checkpoint, "params": b.params,
               "macs": {"frontend": fe_macs, "encoder": enc_macs},
               "encoder_key": b.encoder_key, "frontend_kind": b.frontend_kind, "int8_of": b.int8_of, "time": {}}
        for bs in batch_sizes:
            row["time"][bs] = time_per_second(b, bs, seconds if bs == 1 else seconds / 2, repeats, device)
        rows.append(row)
    teacher = next((r for r in rows if r["name"] == teacher_name), None)
    lines = [
        "| model | params FE / enc / heads (M) | GMACs per audio-s FE / enc | "
        + " | ".join(f"ms per audio-s, batch {bs}: FE / enc / total" for bs in batch_sizes)
        + " | speed-up vs teacher | speed-up vs CNN student |",
        "|---|---|---|" + "---|" * len(batch_sizes) + "---|---|",
    ]
    for r in rows:
        p = r["params"]
        cnn = next((c for c in rows if c["encoder_key"] == r["encoder_key"] and c["frontend_kind"] == "cnn"
                    and c is not r and r["frontend_kind"] != "cnn"), None)
        bs0 = batch_sizes[0]
        vs_t = f"{teacher['time'][bs0]['total'] / r['time'][bs0]['total']:.2f}x" if teacher else "-"
        vs_c = f"{cnn['time'][bs0]['total'] / r['time'][bs0]['total']:.2f}x" if cnn else "-"
        times = " | ".join(" / ".join(f"{1e3 * r['time'][bs][part]:.1f}" for part in ("frontend", "encoder", "total"))
                           for bs in batch_sizes)
        lines.append(f"| {r['name']} | {p['frontend'] / 1e6:.2f} / {p['encoder'] / 1e6:.2f} / {p['heads'] / 1e6:.2f} | "
                     f"{r['macs']['frontend'] / 1e9:.3f} / {r['macs']['encoder'] / 1e9:.3f} | "
                     f"{times} | {vs_t} | {vs_c} |")
    return rows, "\n".join(lines)


def attention_flops(model: nn.Module, batch: int, frames: int, backward: bool) -> int:
    """Analytic FLOPs of the attention products (Q K^T and A V: 2 x 2 B T^2 D per layer) of every
    ``SelfAttention`` in ``model``, times 3 with the backward pass. torch's FlopCounterMode counts
    none for CPU attention kernels and only some for fused GPU ones, so they are counted here."""
    from espnet_distill.nn.hubert import SelfAttention

    dims = [m.q_proj.out_features for m in model.modules() if isinstance(m, SelfAttention)]
    return sum(4 * batch * frames * frames * d for d in dims) * (3 if backward else 1)


def update_flops(task, batch: dict, step: int) -> int:
    """FLOPs of one distillation update (teacher forward, student forward and backward): matmuls and
    convolutions from FlopCounterMode, attention products analytically (:func:`attention_flops`)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        total, count = task.training_step(batch, step)["loss"]
        (total / count).backward()
    task.model.zero_grad(set_to_none=True)
    counted = {str(k) for k in counter.get_flop_counts().get("Global", {})}
    frames = int(cnn_frames(batch["lengths"].max()))
    n = len(batch["utt"])
    extra = 0
    if not any("scaled_dot_product" in k for k in counted):
        extra = attention_flops(task.model, n, frames, True) + attention_flops(task.teacher, n, frames, False)
    return int(counter.get_total_flops()) + extra


def time_train_step(task, batch_seconds: float, utt_seconds: float, repeats: int = 3, device: str = "cpu",
                    amp: str = "none", max_utts: int | None = None, peak_tflops: float = 0.0,
                    compile: bool = False) -> dict[str, float]:
    """Median wall seconds of one distillation update as the trainer makes it (``Trainer._train_step``:
    autocast, GradScaler for fp16, gradient clipping, AdamW, the one read from the device per
    update), after front-end adaptation. The batch holds ``round(batch_seconds / utt_seconds)``
    utterances (at most ``max_utts``) of ``utt_seconds`` each. ``amp``: none | fp16 | bf16
    (autocast, GPU only). Returns ``{"step", "per_audio_second", "utts", "tflop", "tflops",
    "mfu"}`` (model FLOP utilisation against ``peak_tflops``; 0 when no peak is given)."""
    import tempfile

    from espnet_distill.train.trainer import TrainConfig, Trainer

    n_utts = max(1, round(batch_seconds / utt_seconds))
    if max_utts:
        n_utts = min(n_utts, max_utts)
    n = int(utt_seconds * SAMPLE_RATE)
    batch = {"utt": [f"u{i}" for i in range(n_utts)], "wav": torch.randn(n_utts, n, device=device) * 0.1,
             "lengths": torch.full((n_utts,), n, device=device), "lengths_cpu": torch.full((n_utts,), n)}
    step = task.fe_adapt_steps  # a full update, not a front-end adaptation one
    flops = update_flops(task, {k: v.cpu() if torch.is_tensor(v) else v for k, v in batch.items()}, step) \
        if device == "cpu" else None

    class _Lengths:  # the trainer's dataset interface, as far as the timing needs it
        samples = [n] * n_utts

    cfg = TrainConfig(max_steps=10 ** 6, lr=1e-4, amp=amp, device="cuda" if device.startswith("cuda") else "cpu",
                      max_batch_seconds=n_utts * utt_seconds + 1, num_workers=0, compile=compile)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(task, _Lengths(), None, cfg, tmp)
    trainer.step = step
    if len(trainer.phase_starts) > 1:
        trainer._enter_phase(trainer.phase_of(step))
    if flops is None:
        flops = update_flops(task, batch, step)
    times = []
    for i in range(repeats + 1):  # the first update warms up
        _sync(device)
        t0 = time.perf_counter()
        trainer._train_step([dict(batch, bad_utts=0, cropped_utts=0)])
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    tflops = flops / s / 1e12
    return {"step": s, "per_audio_second": s / (n_utts * utt_seconds), "utts": n_utts, "tflop": flops / 1e12,
            "tflops": tflops, "mfu": tflops / peak_tflops if peak_tflops > 0 else 0.0}


PAPER_CONFS = Path(__file__).resolve().parents[1] / "conf" / "paper"  # package data: works from any install


PAPER_STUDENTS = [("sw", "S&W (CNN, 2x768)"), ("dt", "D&T (CNN, 12x480)"), ("dt_fbank", "D&T-Fbank (12x480)")]


def paper_teacher():
    """HuBERT Base's shape (codebook head included), random weights: timing does not depend on them."""
    from espnet_distill.teacher.teacher import HubertTeacher

    torch.manual_seed(0)
    return HubertTeacher(HubertModel(HubertConfig()), "HuBERT Base (teacher)")


def paper_students(teacher):
    """Yield ``(config name, row label, config, student)`` for each paper-size student."""
    from espnet_distill.train.distill import DistillRunConfig, build_student

    for name, label in PAPER_STUDENTS:
        conf = DistillRunConfig.load(PAPER_CONFS / f"{name}.yaml")
        student, _ = build_student(conf, teacher)
        yield name, label, conf, student


def paper_benches():
    teacher = paper_teacher()
    out = [bench_from_hubert(teacher.name, teacher.model)]
    out += [bench_from_student(label, student.eval()) for _, label, _, student in paper_students(teacher)]
    return out


def train_step_table(device: str, batch_seconds: float, utt_seconds: float, repeats: int, amp: str,
                     peak_tflops: float = 0.0, peer: str | None = None, compile: bool = False
                     ) -> tuple[list[dict], str]:
    """Time one distillation update of each paper-size student (its config's teacher precision;
    ``compile``: through torch.compile) and project each config's max_steps; with ``peer`` (the
    folder of s3prl's distiller and its ``peer_step.py``), time the authors' update on the same
    batch in the same run and give the ratio peer time / ours."""
    from espnet_distill.train.distill import DistillTask

    teacher = paper_teacher()
    rows = []
    lines = ["| student | batch | s per update | s per audio-s | TFLOP per update | TFLOP/s | MFU | s3prl s per update "
             "| s3prl / ours | updates (config) | projected hours |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    peer_times: dict[int, float] = {}
    for name, _, conf, student in paper_students(teacher):
        task = DistillTask(student, teacher, conf.distill, cache_teacher=False)  # every update times its forward
        seconds, utts = conf.train.update_budget(1)
        t = time_train_step(task, batch_seconds or seconds, utt_seconds, repeats, device, amp,
                            None if batch_seconds else utts, peak_tflops, compile)
        if peer and t["utts"] not in peer_times:
            peer_times[t["utts"]] = peer_step_time(peer, device, t["utts"], utt_seconds, repeats)
        steps = conf.train.max_steps
        row = {"name": name, **t, "max_steps": steps, "projected_hours": t["step"] * steps / 3600}
        peer_cells = "- | -"
        if peer:
            row["peer_step"] = peer_times[t["utts"]]
            row["peer_over_ours"] = row["peer_step"] / t["step"]
            peer_cells = f"{row['peer_step']:.3f} | {row['peer_over_ours']:.2f}"
        rows.append(row)
        mfu = f"{100 * t['mfu']:.1f} %" if peak_tflops > 0 else "-"
        lines.append(f"| {name} | {t['utts']} x {utt_seconds:g} s | {t['step']:.3f} | {t['per_audio_second']:.4f} | "
                     f"{t['tflop']:.2f} | {t['tflops']:.2f} | {mfu} | {peer_cells} | {steps} | "
                     f"{t['step'] * steps / 3600:.1f} |")
        student.cpu()
    return rows, "\n".join(lines)


def peer_step_time(peer: str, device: str, n_utts: int, utt_seconds: float, repeats: int) -> float:
    """Median seconds of one update of s3prl's DistillerForPretrain, as ``peer/peer_step.py`` times
    it (S&W, a random HuBERT Base teacher in fp32, fp16 autocast on CUDA) on a batch of ``n_utts``
    utterances of ``utt_seconds``; run in its own process with this Python."""
    import re
    import subprocess
    import sys

    script = Path(peer) / "peer_step.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script}: no peer_step.py there (--peer takes the peer's folder, e.g. "
                                "../shared/peers/s3prl_distiller)")
    r = subprocess.run([sys.executable, str(script), device, str(n_utts), str(utt_seconds), str(repeats)],
                       capture_output=True, text=True)
    found = re.search(r"median ([0-9.]+) s per update", r.stdout)
    if r.returncode != 0 or not found:
        raise RuntimeError(f"{script} failed (exit {r.returncode}): {(r.stderr or r.stdout)[-1500:]}")
    return float(found.group(1))


def precision_table(data_dir: str, checkpoint: str | None, max_utts: int) -> tuple[dict, str]:
    """The teacher's target drift in bf16 and fp16 (:mod:`~espnet_distill.analysis.precision`) on the
    first ``max_utts`` utterances of a data dir: the teacher of ``checkpoint``, or a random HuBERT Base."""
    from espnet_distill.analysis.precision import drift_table, target_drift
    from espnet_distill.data.dataset import AudioDataset, collate
    from espnet_distill.teacher.teacher import build_teacher

    teacher = build_teacher({"path": checkpoint}) if checkpoint else paper_teacher()
    ds = AudioDataset(data_dir)
    batch = collate([ds[i] for i in range(min(max_utts, len(ds)))])
    layers = sorted({0, *range(4, teacher.num_layers + 1, 4), teacher.num_layers})
    drift = target_drift(teacher, batch["wav"], batch["lengths"], [torch.bfloat16, torch.float16], layers)
    head = f"teacher: {checkpoint or 'HuBERT Base, random weights'}; {len(batch['utt'])} utterances of {data_dir}\n\n"
    return drift, head + drift_table(drift)


def checkpoint_bench(path: str):
    from espnet_distill.checkpoint_io import safe_load
    from espnet_distill.student.export import STUDENT_FORMAT, load_student
    from espnet_distill.teacher.checkpoints import load_hubert

    if safe_load(path).get("format") == STUDENT_FORMAT:
        student, _ = load_student(path)
        b = bench_from_student(Path(path).parent.name or path, student.eval())
    else:
        model, _ = load_hubert(path)
        name = Path(path).parent.name
        b = bench_from_hubert(name if "teacher" in name else f"{name} (teacher)", model.eval())
    b.checkpoint = str(path)
    return b


def forward_table(checkpoints: list[str], paper: bool, device: str = "cpu", int8: bool = False,
                  batch_sizes: tuple[int, ...] = (1, 8), seconds: float = 8.0, repeats: int = 5,
                  teacher_name: str | None = None) -> tuple[list[dict], str]:
    """Rows and the markdown table of :func:`run` for the paper-size models (``paper``, or when no
    checkpoint is given) and ``checkpoints``, with an int8 row per model when ``int8``; speed-ups
    against ``teacher_name`` (default: the first teacher row)."""
    benches = paper_benches() if (paper or not checkpoints) else []
    benches += [checkpoint_bench(c) for c in checkpoints]
    for b in benches:
        b.module.to(device).eval()
    if int8:
        benches += [int8_bench(b) for b in list(benches)]
    teacher_name = teacher_name or next((b.name for b in benches if "teacher" in b.name), None)
    return run(benches, tuple(batch_sizes), seconds, repeats, device, teacher_name)

