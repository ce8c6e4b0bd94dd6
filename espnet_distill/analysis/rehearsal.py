"""A LibriSpeech-960-shaped rehearsal of the distillation data path, runnable on any machine.

    python -m espnet_distill.bin.scale_rehearsal --workdir exp/scale_rehearsal [--utts 281241] [--steps 40]

It builds a data dir shaped like LibriSpeech's 960 h training set (by default 281,241
utterances of 1-35 s, 12.3 s on average, drawn from a fixed Beta-shaped length distribution) as
a ``segments`` file over a few long real recordings (FSDD digits from ``--recordings-from``,
concatenated to 40 s files; synthetic tones without them), with ``utt2dur`` written as stage 1
does, then runs ``distill_train`` on it with a tiny random HuBERT teacher and a tiny student
for ``--steps`` updates (one process; streaming DataLoader workers), and prints:

- start-up: seconds from launching the trainer to its first update (reading the tables,
  durations, batching 281k utterances, teacher and student set-up, CMVN for fbank students);
- peak memory: the largest proportional set size (PSS, Linux /proc) of the trainer and its
  loader workers together, sampled every 0.2 s;
- memory over the run: the median PSS over the first and over the second half of the updates;
- updates per second and audio seconds per second after the first update;
- a loader pass: the same DataLoader (workers decoding, batching) without a model over
  ``--loader-utts`` utterances, with PSS at its start, its end and its peak: the data path's
  memory over many utterances, which the few updates above cannot show.

The trainer runs with ``MALLOC_TRIM_THRESHOLD_`` set (``--malloc-trim-threshold``, default
1 MiB): on CPU, glibc otherwise keeps the freed activation buffers of variable-sized batches,
and the trainer's resident memory swings between 1 and 2.3 GB with the batch shapes (``--malloc-trim-threshold 0``
leaves glibc's default). On GPU the activations are not on the
host heap.

The figures go to ``WORKDIR/rehearsal.json`` too. The command line is ``python -m espnet_distill.bin.scale_rehearsal``.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from espnet_distill.data.audio import SAMPLE_RATE

RECORDING_SECONDS = 40.0


def librispeech_like_durations(n: int, seed: int = 0, mean: float = 12.3, low: float = 1.0,
                               high: float = 35.0) -> np.ndarray:
    """``n`` durations in [low, high] seconds from a Beta(2, b) shape with the given mean
    (LibriSpeech 960 h: 12.3 s on average, most between 10 and 17 s, none above about 35 s)."""
    m = (mean - low) / (high - low)
    a = 2.0
    b = a * (1 - m) / m
    rng = np.random.default_rng(seed)
    return np.round(low + (high - low) * rng.beta(a, b, size=n), 2)


def make_recordings(out: Path, n: int, source: Path | None) -> list[Path]:
    """``n`` 40 s, 16 kHz flac recordings: FSDD speech concatenated when ``source`` has wavs,
    else tones with a slow amplitude envelope."""
    from espnet_distill.data.audio import to_mono

    out.mkdir(parents=True, exist_ok=True)
    wavs = sorted(source.glob("*.wav")) if source is not None and source.is_dir() else []
    need = int(RECORDING_SECONDS * SAMPLE_RATE)
    paths, k = [], 0
    for i in range(n):
        path = out / f"rec{i:02d}.flac"
        paths.append(path)
        if path.is_file():
            continue
        pieces, total = [], 0
        while total < need:
            if wavs:
                x, rate = sf.read(wavs[k % len(wavs)], dtype="float32")
                x = to_mono(x, rate)
                k += 1
            else:
                t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
                x = (0.2 * np.sin(2 * np.pi * (150 + 40 * (total // SAMPLE_RATE % 7)) * t)).astype(np.float32)
            pieces.append(x)
            total += len(x)
        sf.write(path, np.concatenate(pieces)[:need], SAMPLE_RATE, format="FLAC")
    return paths


def make_data_dir(d: Path, recordings: list[Path], n: int, seed: int = 0) -> float:
    """A Kaldi dir of ``n`` segments over ``recordings`` (wav.scp, segments, utt2spk, spk2utt,
    utt2dur). Returns the total hours."""
    from espnet_distill.data.tables import write_table

    d.mkdir(parents=True, exist_ok=True)
    durs = librispeech_like_durations(n, seed)
    rng = np.random.default_rng(seed + 1)
    recs = rng.integers(0, len(recordings), size=n)
    starts = np.round(rng.uniform(0, RECORDING_SECONDS - durs - 0.05), 2)
    utts = [f"spk{i % 2338:04d}-{i:06d}" for i in range(n)]  # 2,338 speakers as in LibriSpeech 960 h
    order = np.argsort(utts)
    write_table(d / "wav.scp", [(f"rec{i:02d}", str(p)) for i, p in enumerate(recordings)])
    write_table(d / "segments",
                [(utts[i], f"rec{recs[i]:02d} {starts[i]:.2f} {starts[i] + durs[i]:.2f}") for i in order])
    write_table(d / "utt2spk", [(utts[i], utts[i].split("-")[0]) for i in order])
    write_table(d / "utt2dur", [(utts[i], f"{durs[i]:.2f}") for i in order])
    spk: dict[str, list[str]] = {}
    for i in order:
        spk.setdefault(utts[i].split("-")[0], []).append(utts[i])
    write_table(d / "spk2utt", [(s, " ".join(u)) for s, u in sorted(spk.items())])
    return float(durs.sum()) / 3600


def tree_pss_mb(pid: int) -> float:
    """PSS (MB) of ``pid`` and all its descendants (Linux /proc; 0 for vanished processes)."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += float(line.split()[1]) / 1024
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


TINY_TEACHER = dict(conv_layers=[[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]],
                    embed_dim=64, ffn_dim=128, num_layers=2, num_heads=2, conv_pos=16, conv_pos_groups=4,
                    final_dim=16, num_classes=20)


def student_config(frontend: str, steps: int, batch_seconds: float, batch_size: int, workers: int) -> dict:
    conf = {"student": {"frontend": frontend, "dim": 64, "ffn_dim": 64, "num_layers": 2, "num_heads": 2,
                        "conv_pos": 16, "conv_pos_groups": 4, "pred_head": "layer-wise", "disc_head": "type2"},
            "distill": {"alpha": 0.4, "fe_adapt_steps": steps // 4 if frontend == "fbank" else 0, "cmvn_utts": 200},
            "train": {"max_steps": steps, "lr": 1e-3, "warmup_ratio": 0.1, "global_batch_seconds": batch_seconds,
                      "global_batch_size": batch_size, "max_utt_seconds": 36, "log_every": 1,
                      "ckpt_every": 10 ** 6, "num_workers": workers, "valid_every": 0}}
    if frontend == "cnn":
        conf["student"]["frontend_conf"] = {"conv_layers": TINY_TEACHER["conv_layers"], "layer_norm": False}
    return conf


def loader_pass(data_dir: Path, n_utts: int, batch_seconds: float, batch_size: int, workers: int) -> dict:
    """Iterate the training DataLoader (no model) over ``n_utts`` utterances; PSS of this process
    and its workers at the start, the end and the peak, and the audio decoded per second."""
    from tqdm import tqdm

    from espnet_distill.data.dataset import AudioDataset, BucketBatches, collate

    t0 = time.time()
    ds = AudioDataset(data_dir, max_seconds=36)
    sampler = BucketBatches(ds.samples, batch_seconds, True, 0, 0, 1, batch_size)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                                         prefetch_factor=4 if workers else None)
    seen, audio, pss, start = 0, 0.0, [], None
    bar = tqdm(total=n_utts, desc="loader pass", unit="utt", mininterval=5)
    for i, batch in enumerate(loader):
        if start is None:
            start = time.time()
        seen += len(batch["utt"])
        audio += float(batch["lengths"].sum()) / SAMPLE_RATE
        bar.update(len(batch["utt"]))
        if i % 50 == 0:
            pss.append(tree_pss_mb(os.getpid()))
        if seen >= n_utts:
            break
    bar.close()
    pss.append(tree_pss_mb(os.getpid()))
    elapsed = time.time() - (start or t0)
    return {"loader_utts": seen, "loader_audio_hours": round(audio / 3600, 1),
            "loader_setup_s": round((start or t0) - t0, 1),
            "loader_pss_start_mb": round(pss[0], 0), "loader_pss_end_mb": round(pss[-1], 0),
            "loader_pss_peak_mb": round(max(pss), 0), "loader_audio_s_per_s": round(audio / max(1e-9, elapsed), 0)}



def run_rehearsal(workdir: str | Path, utts: int, recordings: int, recordings_from: str | Path, frontend: str,
                  steps: int, batch_seconds: float, batch_size: int, workers: int, valid_utts: int,
                  loader_utts: int, malloc_trim_threshold: int) -> dict:
    """Build the data dir and a tiny teacher in ``workdir``, distil for ``steps`` updates while
    sampling the trainer's memory, then (``loader_utts`` > 0) run the loader pass. Returns the
    figures, also written to ``workdir/rehearsal.json``."""
    from espnet_distill.nn.hubert import HubertConfig, HubertModel
    from espnet_distill.teacher.checkpoints import save_hubert

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    src = Path(recordings_from)
    recs = make_recordings(work / "recordings", recordings, src if src.is_dir() else None)
    hours = make_data_dir(work / "data/train", recs, utts)
    make_data_dir(work / "data/valid", recs, valid_utts, seed=7)
    logging.info("data dir of %d utterances (%.1f h) over %d recordings%s in %.1f s", utts, hours, len(recs),
                 "" if src.is_dir() else " (synthetic: no FSDD folder)", time.time() - t0)
    torch.manual_seed(0)
    save_hubert(work / "teacher.pt", HubertModel(HubertConfig(**TINY_TEACHER)))
    (work / "teacher.yaml").write_text(yaml.safe_dump({"backend": "local", "path": str(work / "teacher.pt")}))
    (work / "student.yaml").write_text(yaml.safe_dump(
        student_config(frontend, steps, batch_seconds, batch_size, workers)))

    out = work / "distill"
    log_path = out / "train_log.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "espnet_distill.bin.distill_train", "--config", str(work / "student.yaml"),
           "--teacher", str(work / "teacher.yaml"), "--train-dir", str(work / "data/train"),
           "--valid-dir", str(work / "data/valid"), "--outdir", str(out), "--no-resume"]
    start = time.time()
    samples: list[tuple[float, float, int]] = []  # (time, PSS MB, updates logged)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if malloc_trim_threshold > 0:
        env["MALLOC_TRIM_THRESHOLD_"] = str(malloc_trim_threshold)
    with open(out / "rehearsal_train.log", "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            steps = len(log_path.read_text().splitlines()) if log_path.is_file() else 0
            samples.append((time.time() - start, tree_pss_mb(proc.pid), steps))
            time.sleep(0.2)
    if proc.returncode != 0:
        raise RuntimeError(f"distill_train failed (exit {proc.returncode}); see {out / 'rehearsal_train.log'}")
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    first = next(t for t, _, n in samples if n >= 1) if any(n >= 1 for _, _, n in samples) else float("nan")
    last = max((t for t, _, n in samples if n >= len(train)), default=samples[-1][0])
    during = [(m, n) for _, m, n in samples if 1 <= n < len(train)]
    half = len(train) // 2
    first_half = [m for m, n in during if n <= half] or [float("nan")]
    second_half = [m for m, n in during if n > half] or [float("nan")]
    steps_after = len(train) - 1
    audio = sum(r["batch_seconds"] for r in train[1:])
    result = {
        "utterances": utts, "hours": round(hours, 1), "frontend": frontend, "workers": workers,
        "batch_seconds": batch_seconds, "batch_size": batch_size, "updates": len(train),
        "startup_s": round(first, 1),
        "peak_pss_mb": round(max(m for _, m, _ in samples), 0),
        "pss_median_first_half_mb": round(float(np.median(first_half)), 0),
        "pss_median_second_half_mb": round(float(np.median(second_half)), 0),
        "updates_per_s": round(steps_after / max(1e-9, last - first), 2),
        "audio_s_per_s": round(audio / max(1e-9, last - first), 1),
        "machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}",
    }
    if loader_utts > 0:
        result.update(loader_pass(work / "data/train", loader_utts, batch_seconds, batch_size, workers))
    (work / "rehearsal.json").write_text(json.dumps(result, indent=2))
    return result
