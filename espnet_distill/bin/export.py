"""Export a distilled student for use outside this toolkit, and check the export against PyTorch.

    python -m espnet_distill.bin.export --to hf    exp/distill/dt_cnn/student.pt dt_cnn_hf/
    python -m espnet_distill.bin.export --to onnx  exp/distill/dt_fbank/student.pt dt_fbank.onnx
    python -m espnet_distill.bin.export --to onnx --quantize int8 exp/distill/dt_fbank/student.pt dt_fbank.int8.onnx
    python -m espnet_distill.bin.export --to s3prl exp/distill/dt_cnn/student.pt dt_cnn.distiller_local.pt

Targets (OUT is a directory for hf, a file otherwise):
  hf     transformers HubertModel directory (config.json, model.safetensors, preprocessor_config.json):
         ``HubertModel.from_pretrained(OUT)(wav, output_hidden_states=True).hidden_states`` are the
         student's hidden states. Waveform-CNN students only.
  onnx   any student, Fbank included (the fbank is in the graph): inputs wav (B, L >= 400 samples,
         16 kHz, float32 in [-1, 1]) and lengths (B,), outputs hidden_states (1 + layers, B, T, D)
         and frame_lengths (B,); batch and length axes are dynamic. --quantize int8: ONNX Runtime's
         dynamic int8 quantization of the linear layers.
  s3prl  s3prl's distiller_local (``S3PRLUpstream("distiller_local", path_or_url=OUT)``):
         waveform-CNN students trained without the front-end LayerNorm (frontend_conf.layer_norm:
         false), as DistilHuBERT.
A student a target cannot express exactly is refused with the reason (exit status 2), and so is an
OUT that is one of the inputs, or that exists (unless --overwrite).

Every export is checked: the exported model runs on --check-audio (or, without it, on two
seconds of noise and a padded batch of two) and the largest absolute difference from our
PyTorch student over all hidden states is printed; above --atol (fp32 exports) the output is
removed and the exit status is 1. The distillation heads are not exported: the exports are the
encoder that downstream tasks use.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from espnet_distill.bin import setup_logging
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.data.audio import AudioError, load_audio_file
from espnet_distill.nn.hubert import conv_output_lengths
from espnet_distill.student.export import (
    ONNX_MIN_SAMPLES,
    ExportError,
    check_output,
    export_distiller_local,
    export_hf,
    export_onnx,
    load_student,
    quantize_onnx_int8,
)
from espnet_distill.student.model import Student


def check_batches(audio: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(wav (B, L), lengths (B,)) batches to compare an export on: each audio file alone, or noise."""
    if audio:
        out = []
        for path in audio:
            wav = torch.from_numpy(load_audio_file(path))
            if len(wav) < ONNX_MIN_SAMPLES:
                raise AudioError(f"{path}: too short to check on ({len(wav)} samples; at least {ONNX_MIN_SAMPLES})")
            out.append((wav[None], torch.tensor([len(wav)])))
        return out
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(2, 32000, generator=g)
    wav[1, 20000:] = 0
    return [(wav[:1], torch.tensor([32000])), (wav, torch.tensor([32000, 20000]))]


def max_diff(ref: list[torch.Tensor], mask: torch.Tensor, got: list[np.ndarray | None]) -> float:
    """Largest |ref - got| over the valid frames of every hidden state the export gives (``None``:
    a state the format does not give the same way)."""
    if len(ref) != len(got):
        raise ExportError(f"the export gives {len(got)} hidden states, the student {len(ref)}")
    d = 0.0
    for r, g in zip(ref, got):
        if g is None:
            continue
        g = torch.as_tensor(np.asarray(g))
        if g.shape != r.shape:
            raise ExportError(f"the export gives hidden states of shape {tuple(g.shape)}, the student {tuple(r.shape)}")
        d = max(d, float((r - g).abs()[mask].max()))
    return d


Runner = Callable[[torch.Tensor, torch.Tensor], list]  # (wav, lengths) -> the export's hidden states


def hf_runner(out: Path, student: Student) -> Runner:
    from transformers import HubertModel

    model = HubertModel.from_pretrained(out).eval()

    @torch.no_grad()
    def run(wav: torch.Tensor, lengths: torch.Tensor) -> list:
        o = model(wav, output_hidden_states=True)
        # pre-LN models: transformers reports the last layer before the final LayerNorm; ours after it
        return [h.numpy() for h in o.hidden_states[:-1]] + [o.last_hidden_state.numpy()]

    return run


def onnx_runner(out: Path, student: Student) -> Runner:
    import onnxruntime

    sess = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def run(wav: torch.Tensor, lengths: torch.Tensor) -> list:
        hidden, _ = sess.run(None, {"wav": wav.numpy(), "lengths": lengths.numpy()})
        return list(hidden)

    return run


def s3prl_runner(out: Path, student: Student) -> Runner:
    from espnet_distill.teacher.teacher import S3PRLTeacher

    upstream = S3PRLTeacher("distiller_local", str(out)).upstream  # our weights-only guard around s3prl's loader

    @torch.no_grad()
    def run(wav: torch.Tensor, lengths: torch.Tensor) -> list:
        hs, _ = upstream(wav, lengths)
        t = int(conv_output_lengths(lengths, student.frontend.conv_layers).max())
        # s3prl's first hidden state is the projected CNN output (before the positional convolution),
        # and the predictions of expand-last heads follow the layers: layers 1..N are compared
        return [None] + [h[:, :t].numpy() for h in hs[1: student.cfg.num_layers + 1]]

    return run


@dataclass(frozen=True)
class Target:
    export: Callable[[Student, Path], object]
    runner: Callable[[Path, Student], Runner]  # loads the export once
    batched: bool  # checked on padded batches (else one utterance at a time: no attention mask)


TARGETS = {
    "hf": Target(export_hf, hf_runner, batched=False),
    "onnx": Target(export_onnx, onnx_runner, batched=True),
    "s3prl": Target(export_distiller_local, s3prl_runner, batched=False),
}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", required=True, choices=sorted(TARGETS), help="target format (see above)")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: dynamic int8 quantization of the linear layers (onnx only; default none)")
    p.add_argument("--check-audio", action="append", default=[], metavar="AUDIO",
                   help="an audio file (any rate and channel count) to compare the export on; repeat it for "
                        "several (default: noise)")
    p.add_argument("--atol", type=float, default=1e-3,
                   help="largest allowed difference from PyTorch for fp32 exports (default 1e-3)")
    p.add_argument("--json", default=None, help="also write what was exported and the measured difference here")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it exists (refused otherwise)")
    p.add_argument("student", help="student checkpoint of espnet_distill (exp/distill/<name>/student.pt)")
    p.add_argument("out", help="output: a directory for hf, a file for onnx and s3prl")
    a = p.parse_args(argv)
    out, target = Path(a.out), TARGETS[a.to]
    try:
        if a.quantize == "int8" and a.to != "onnx":
            raise ExportError(f"--quantize int8 is for --to onnx: {a.to} loaders read float weights only "
                              "(quantize a PyTorch student at load time with student.export.quantize_int8)")
        check_output(out, [a.student, *a.check_audio] + ([a.json] if a.json else []), a.overwrite)
        student, _ = load_student(a.student)
        batches = check_batches(a.check_audio)
        if not target.batched:
            batches = [(w[i:i + 1, : int(n[i])], n[i:i + 1]) for w, n in batches for i in range(len(n))]
        target.export(student, out)
        if a.quantize == "int8":
            quantize_onnx_int8(out, out)
    except (ExportError, CheckpointError, AudioError, FileNotFoundError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    run = target.runner(out, student)
    diff = 0.0
    for wav, lengths in batches:
        with torch.no_grad():
            ref, mask = student.encode(wav, lengths)
        diff = max(diff, max_diff(ref, mask, run(wav, lengths)))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
    report = {"to": a.to, "quantize": a.quantize, "student": a.student, "out": str(out), "bytes": size,
              "max_abs_diff": diff, "checked_on": a.check_audio or "noise"}
    print(f"{out}: {a.to}{' int8' if a.quantize == 'int8' else ''}, {size / 1e6:.2f} MB; largest difference from "
          f"the PyTorch student over all hidden states: {diff:.2e}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")
    if a.quantize == "none" and diff > a.atol:
        print(f"export: {out} differs from the student by {diff:.2e} > --atol {a.atol}; removed", file=sys.stderr)
        shutil.rmtree(out) if out.is_dir() else out.unlink()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
