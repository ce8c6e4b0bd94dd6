"""An exported student checked against PyTorch: the targets (hf, onnx, s3prl), how each export is
run, and the largest difference over all hidden states. The command line and what each target
gives: ``python -m espnet_distill.bin.export --help``."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

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


def export_checked(student_path: str, out: Path, to: str, quantize: str = "none", check_audio: list[str] = (),
                   atol: float = 1e-3, overwrite: bool = False, refuse_also: list[str] = ()) -> dict:
    """Export ``student_path`` to ``out`` as ``to`` (a key of :data:`TARGETS`), run the export and the
    student on ``check_audio`` (noise without it), and return the report (``max_abs_diff`` among
    it). An fp32 export that differs by more than ``atol`` is removed (``removed`` in the report).
    What cannot be exported, or an ``out`` that is an input (``refuse_also`` too) or exists without
    ``overwrite``, is an ExportError, before anything is written."""
    target = TARGETS[to]
    if quantize == "int8" and to != "onnx":
        raise ExportError(f"--quantize int8 is for --to onnx: {to} loaders read float weights only "
                          "(quantize a PyTorch student at load time with student.export.quantize_int8)")
    check_output(out, [student_path, *check_audio, *refuse_also], overwrite)
    student, _ = load_student(student_path)
    batches = check_batches(list(check_audio))
    if not target.batched:
        batches = [(w[i:i + 1, : int(n[i])], n[i:i + 1]) for w, n in batches for i in range(len(n))]
    target.export(student, out)
    if quantize == "int8":
        quantize_onnx_int8(out, out)
    run = target.runner(out, student)
    diff = 0.0
    for wav, lengths in batches:
        with torch.no_grad():
            ref, mask = student.encode(wav, lengths)
        diff = max(diff, max_diff(ref, mask, run(wav, lengths)))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
    removed = quantize == "none" and diff > atol
    if removed:
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    return {"to": to, "quantize": quantize, "student": student_path, "out": str(out), "bytes": size,
            "max_abs_diff": diff, "checked_on": list(check_audio) or "noise", "removed": removed}
