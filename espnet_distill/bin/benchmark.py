"""Benchmark teacher and students: parameters, MACs and forward time per second of audio.

    python -m espnet_distill.bin.benchmark [--paper] [--checkpoint PATH ...] [--device cpu]
        [--batch-sizes 1 8] [--seconds 8] [--repeats 5] [--threads N] [--json OUT] [--markdown OUT]

``--paper`` (the default when no checkpoint is given) adds the teacher (HuBERT Base shape) and S&W, D&T and
D&T-Fbank at paper size, with random weights (timing does not depend on them). ``--checkpoint`` adds any of
our teacher or student checkpoints. Prints a markdown table with front-end / encoder / total time, and the
speed-up of each model against the teacher and against the CNN student of the same encoder shape. ``--int8``
adds a row per model with its linear layers dynamically quantized to int8 (CPU inference, as ``bin/export
--quantize int8`` and ``bin.asr_decode --quantize int8`` run it).

``--train-step`` times distillation instead: one update as the trainer makes it (HuBERT Base-shaped teacher
forward, student forward and backward, GradScaler under fp16, clipping, AdamW) of each paper-size student on a
batch of the config's global batch (one process: at most ``global_batch_size`` utterances and
``global_batch_seconds`` of audio; or ``--train-batch-seconds``) in ``--utt-seconds`` utterances, with the
update's FLOPs (matmuls and convolutions counted by torch, attention products analytically), the achieved
TFLOP/s and, with ``--peak-tflops`` (H100/H200 dense bf16/fp16: 989), the model FLOP utilisation; and projects
the time of the config's ``max_steps`` updates. ``--peer DIR`` also times s3prl's own distiller (the authors'
code base: DIR/peer_step.py) on the same batch in the same run and prints the ratio.

``--runtime onnx`` times instead the paper-size models as deployed: each with a 32-token CTC head, exported by
``bin/export --to sherpa-onnx`` and run by the folder's transcribe.py in a process of its own (sherpa-onnx or
ONNX Runtime; ``--threads``, default 1; batch 1; ``--repeats`` utterances of ``--seconds``): ms per
audio-second, size and peak memory, fp32 and int8 (analysis/onnx_bench.py).

``--target-drift DATA_DIR`` (older name: ``--teacher-precision``) measures instead how far the teacher's targets
move in bf16 and fp16 rather than fp32 (what ``distill.teacher_precision: amp`` trades for speed), on the first
``--max-utts`` utterances of a data dir: the teacher of ``--checkpoint``, or a HuBERT Base with random weights.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from espnet_distill.analysis.benchmark import forward_table, precision_table, train_step_table
from espnet_distill.bin import new_parser, setup_logging


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("benchmark", __doc__)
    p.add_argument("--paper", action="store_true", help="include the paper-size teacher and students (random weights)")
    p.add_argument("--checkpoint", nargs="*", default=[], help="our teacher or student checkpoints to include")
    p.add_argument("--teacher-name", help="teacher row for the speed-ups (default: the first teacher row)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8],
                   help="batch sizes to time (the first one gives the speed-ups)")
    p.add_argument("--seconds", type=float, default=8.0, help="utterance seconds at batch 1 (half at larger batches)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--int8", action="store_true", help="also time each model with int8 linear layers (PyTorch, CPU)")
    p.add_argument("--train-step", action="store_true", help="time one distillation update per paper-size student")
    p.add_argument("--train-batch-seconds", type=float, default=0,
                   help="--train-step: audio per batch (0: each config's global batch, as one process trains it)")
    p.add_argument("--utt-seconds", type=float, default=12.3, help="--train-step: utterance length (LibriSpeech)")
    p.add_argument("--amp", choices=["none", "fp16", "bf16"], default="none", help="--train-step: GPU autocast")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="--train-step: the device's peak TFLOP/s for the MFU column (H100/H200 bf16 dense: 989)")
    p.add_argument("--peer", metavar="DIR",
                   help="--train-step: also time s3prl's DistillerForPretrain on the same batch, with DIR/peer_step.py "
                        "(the peer folder, e.g. ../shared/peers/s3prl_distiller), and print ours against it")
    p.add_argument("--compile", action="store_true", help="--train-step: the students through torch.compile")
    p.add_argument("--target-drift", "--teacher-precision", metavar="DATA_DIR", help="the targets' drift in bf16/fp16")
    p.add_argument("--max-utts", type=int, default=40, help="--target-drift: utterances to use")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch", help="onnx: the deployment benchmark")
    p.add_argument("--json", help="write the measured rows to this JSON file")
    p.add_argument("--markdown", help="write the table to this file")
    a = p.parse_args(argv)
    if a.int8 and a.device != "cpu":
        p.error("--int8 times PyTorch's dynamic int8 quantization, which runs on the CPU only")
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.runtime == "onnx":
        from espnet_distill.analysis.onnx_bench import onnx_table
        rows, table = onnx_table(a.seconds, a.repeats, a.threads or 1)
    elif a.target_drift:
        rows, table = precision_table(a.target_drift, a.checkpoint[0] if a.checkpoint else None, a.max_utts)
    elif a.train_step:
        rows, table = train_step_table(a.device, a.train_batch_seconds, a.utt_seconds, a.repeats, a.amp,
                                       a.peak_tflops, a.peer, a.compile)
    else:
        rows, table = forward_table(a.checkpoint, a.paper, a.device, a.int8, tuple(a.batch_sizes), a.seconds,
                                    a.repeats, a.teacher_name)
    if not a.target_drift and a.runtime == "torch":
        print(f"device: {a.device}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}"
              + (f", amp: {a.amp}" if a.train_step else "") + "\n")
    print(table)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    if a.markdown:
        Path(a.markdown).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
