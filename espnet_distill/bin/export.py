"""Export a distilled student or a fine-tuned ASR model for use outside this toolkit, checked against PyTorch.

    python -m espnet_distill.bin.export --to sherpa-onnx exp/asr/dt_fbank_train_10min dt_fbank_onnx/
    python -m espnet_distill.bin.export --to hf    exp/distill/dt_cnn/student.pt dt_cnn_hf/
    python -m espnet_distill.bin.export --to onnx  exp/distill/dt_fbank/student.pt dt_fbank.onnx
    python -m espnet_distill.bin.export --to onnx --quantize int8 exp/distill/dt_fbank/student.pt dt_fbank.int8.onnx
    python -m espnet_distill.bin.export --to s3prl exp/distill/dt_cnn/student.pt dt_cnn.distiller_local.pt

Targets (OUT is a directory for sherpa-onnx and hf, a file otherwise):
  sherpa-onnx  a fine-tuned CTC model (exp/asr/<model>; its CTC branch) as a folder that runs without
         torch (model.onnx, model.int8.onnx, tokens.txt, transcribe.py, a model card): Fbank students
         in sherpa-onnx, waveform models in ONNX Runtime (espnet_distill/asr/onnx_export.py).
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
OUT that is one of the inputs or inside the experiment folder, or that exists (unless --overwrite).

Every export is checked: the exported model runs on --check-audio (or, without it, on two
seconds of noise and a padded batch of two) and the largest absolute difference from our
PyTorch student over all hidden states is printed; above --atol (fp32 exports) the output is
removed and the exit status is 1. The distillation heads are not exported: the exports are the
encoder that downstream tasks use.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.data.audio import AudioError
from espnet_distill.student.export import ExportError
from espnet_distill.student.export_check import TARGETS, export_checked


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("export", __doc__)
    p.add_argument("--to", required=True, choices=sorted([*TARGETS, "sherpa-onnx"]), help="target format (see above)")
    p.add_argument("--model-file", help="sherpa-onnx: the experiment's model file (default: the averaged one)")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: dynamic int8 quantization of the linear layers (onnx only; default none)")
    p.add_argument("--check-audio", action="append", default=[], metavar="AUDIO",
                   help="an audio file (any rate and channel count) to compare the export on; repeat it for "
                        "several (default: noise)")
    p.add_argument("--atol", type=float, default=1e-3,
                   help="largest allowed difference from PyTorch for fp32 exports (default 1e-3)")
    p.add_argument("--json", default=None, help="also write what was exported and the measured difference here")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it exists (refused otherwise)")
    p.add_argument("student", help="student checkpoint (exp/distill/<name>/student.pt); for sherpa-onnx the "
                                   "experiment folder (exp/asr/<model>)")
    p.add_argument("out", help="output: a directory for sherpa-onnx and hf, a file for onnx and s3prl")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.to == "sherpa-onnx":
        return export_asr_model(a, out)
    try:
        report = export_checked(a.student, out, a.to, a.quantize, a.check_audio, a.atol, a.overwrite,
                                [a.json] if a.json else [])
    except (ExportError, CheckpointError, AudioError, FileNotFoundError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    diff = report["max_abs_diff"]
    print(f"{out}: {a.to}{' int8' if a.quantize == 'int8' else ''}, {report['bytes'] / 1e6:.2f} MB; largest difference "
          f"from the PyTorch student over all hidden states: {diff:.2e}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")
    if report["removed"]:
        print(f"export: {out} differs from the student by {diff:.2e} > --atol {a.atol}; removed", file=sys.stderr)
        return 1
    return 0


def export_asr_model(a: argparse.Namespace, out: Path) -> int:
    from espnet_distill.asr.onnx_export import describe, export_asr
    from espnet_distill.config import ConfigError

    try:
        info = export_asr(a.student, out, a.model_file, a.check_audio, a.atol, a.overwrite)
    except (ExportError, CheckpointError, ConfigError, AudioError, FileNotFoundError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    print(describe(out, info))
    if a.json:
        Path(a.json).write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
