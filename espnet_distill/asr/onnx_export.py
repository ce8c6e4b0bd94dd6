"""A fine-tuned CTC model (``exp/asr/<model>``) as a folder that runs without torch: sherpa-onnx for
Fbank students, ONNX Runtime for waveform models (``bin/export --to sherpa-onnx EXP OUT``).

Two kinds of graph, chosen by the frontend (registry ``KINDS``):

- ``fbank`` (Fbank students): the graph starts at the 80-bin Kaldi fbank, which sherpa-onnx's
  WeNet-CTC model type computes itself from int16-scaled audio; it applies the student's CMVN,
  Conv1d + GLU, projection, transformer, the selected layer, ESPnet's CTC head and log-softmax.
  Inputs ``x`` (N, T, 80) and ``x_lens`` (N,) int64; outputs ``log_probs`` (N, T', V) and
  ``log_probs_lens`` (N,) with T' = (T - 1) // 2 + 1, which with ``snip_edges`` is the CNN's frame
  count the CTC head was trained on. Metadata: ``model_type: wenet_ctc``, ``vocab_size``,
  ``subsampling_factor`` (2: 20 ms frames over 10 ms features).
- ``waveform`` (CNN and pruned students, the teacher as frontend): ``wav`` (N, L) 16 kHz float in
  [-1, 1] and ``wav_lens`` -> ``log_probs``, ``log_probs_lens``; run by our runner over ONNX Runtime
  (asr/onnx_runner.py). sherpa-onnx's Omnilingual-ASR CTC type also takes a waveform, but it
  normalises every utterance to zero mean and unit variance first, which these students were not
  trained with (HuBERT Base's ``normalize: false``); a teacher trained normalised is not either,
  as it reads one utterance per graph run with no lengths.

Written beside the graphs: ``model.int8.onnx`` (ONNX Runtime's dynamic int8 quantization of the
MatMul nodes, as sherpa-onnx's own exporters do), ``tokens.txt`` (``token id``; ESPnet's
``<blank>`` keeps its id 0, ``<space>`` is written ``▁``), ``export.json`` (the kind, the runtime,
the features), ``transcribe.py`` (asr/onnx_runner.py) and ``README.md`` (the model card). Models
with an attention decoder are exported as their CTC branch (said in the card).
"""
from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from espnet_distill.asr import onnx_runner
from espnet_distill.asr.experiment import Experiment
from espnet_distill.asr.frontend import PassThroughEncoder
from espnet_distill.checkpoint_io import atomic_path
from espnet_distill.data.audio import FRAME_WINDOW, SAMPLE_RATE
from espnet_distill.nn.hubert import lengths_to_mask
from espnet_distill.student.export import ExportError
from espnet_distill.student.frontend import FbankFrontend, kaldi_fbank

logger = logging.getLogger(__name__)

# our fbank (student/frontend.py), as sherpa-onnx's FeatureExtractorConfig names it
FBANK_FEATURES = {"num_mel_bins": 80, "low_freq": 20.0, "high_freq": 0.0, "snip_edges": True, "dither": 0.0,
                  "scale": "int16", "frame_length_ms": 25, "frame_shift_ms": 10, "window": "povey"}
OPSET = 17


class FbankCtc(nn.Module):
    """(N, T, 80) fbank -> CTC log-probs, through a fine-tuned model whose frontend is an Fbank student."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.frontend = model.frontend.upstream.frontend

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fe, dfe = self.frontend, self.model.frontend
        mask = lengths_to_mask(x_lens, x.shape[1])
        y = (x - fe.cmvn_mean) / fe.cmvn_std * mask[..., None].to(x.dtype)
        y = fe.proj(fe._subsample(y.transpose(1, 2)).transpose(1, 2))  # (N, T', D)
        n = torch.div(x_lens - 1, 2, rounding_mode="floor") + 1
        hidden = dfe.upstream.encoder(y, lengths_to_mask(n, y.shape[1]))
        enc, n, _ = self.model.encoder(dfe._select(hidden), n)
        return self.model.ctc.log_softmax(enc), n


class WaveformCtc(nn.Module):
    """(N, L) waveform -> CTC log-probs: ESPnet's own ``encode`` and CTC head."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc, n = self.model.encode(wav, wav_lens)
        return self.model.ctc.log_softmax(enc), n


@dataclass(frozen=True)
class Kind:
    graph: Callable  # ESPnet model -> nn.Module
    inputs: tuple[str, str]
    runtime: str
    example: Callable  # () -> the graph's example inputs


def _fbank_example() -> tuple[torch.Tensor, torch.Tensor]:
    wav = 0.1 * torch.randn(2, SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    fb, n = fbank_features(wav, torch.tensor([SAMPLE_RATE, 3 * SAMPLE_RATE // 4]))
    return fb, n


def _waveform_example() -> tuple[torch.Tensor, torch.Tensor]:
    wav = 0.1 * torch.randn(2, SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    return wav, torch.tensor([SAMPLE_RATE, 3 * SAMPLE_RATE // 4])


KINDS = {
    "fbank": Kind(FbankCtc, ("x", "x_lens"), "sherpa-onnx (WeNet CTC)", _fbank_example),
    "waveform": Kind(WaveformCtc, ("wav", "wav_lens"), "onnxruntime", _waveform_example),
}


def fbank_features(wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our student's fbank of (N, L) audio in [-1, 1]: (N, T, 80) and the frame counts (int64)."""
    fe = FbankFrontend(dim=8)
    fb, n = kaldi_fbank(wav.float(), lengths, fe.mel, fe.window)
    return fb, n.long()


def kind_of(model) -> str:
    """The graph kind of a fine-tuned model: ``fbank`` where its frontend is an Fbank student."""
    upstream = getattr(model.frontend, "upstream", None)
    if upstream is None:
        raise ExportError("this model's frontend is not a distilled student or teacher of ours "
                          f"({type(model.frontend).__name__}); nothing to export to sherpa-onnx")
    if getattr(model, "preencoder", None) is not None or not isinstance(model.encoder, PassThroughEncoder):
        raise ExportError(f"this model has an encoder of its own ({type(model.encoder).__name__}, a SUPERB-protocol "
                          "probe): only whole-model fine-tuned models (encoder: passthrough) are exported; export "
                          "the same frontend's fine-tuned model instead")
    fe = getattr(upstream, "frontend", None)
    return "fbank" if isinstance(fe, FbankFrontend) else "waveform"


def write_tokens(token_list: list[str], path: Path) -> None:
    """sherpa-onnx's tokens.txt: ``token id`` per line in ESPnet's order (``<space>`` as ``▁``)."""
    lines = [f"{onnx_runner.SPACE if t == '<space>' else t} {i}" for i, t in enumerate(token_list)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def add_metadata(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))


def export_graph(model, kind: str, path: Path) -> None:
    k = KINDS[kind]
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's shape warnings; the check below runs other lengths
        torch.onnx.export(k.graph(model).eval(), k.example(), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=list(k.inputs), output_names=["log_probs", "log_probs_lens"],
                          dynamic_axes={k.inputs[0]: {0: "N", 1: "T"}, k.inputs[1]: {0: "N"},
                                        "log_probs": {0: "N", 1: "T"}, "log_probs_lens": {0: "N"}})


def quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(dst) as tmp:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])


def torch_log_probs(model, wav: torch.Tensor) -> np.ndarray:
    """(T', V) CTC log-probs of one utterance by the PyTorch model."""
    with torch.no_grad():
        enc, _ = model.encode(wav[None], torch.tensor([wav.shape[0]]))
        return model.ctc.log_softmax(enc)[0].numpy()


def onnx_log_probs(path: Path, kind: str, wav: torch.Tensor) -> np.ndarray:
    """(T', V) log-probs of one utterance by ONNX Runtime on our inputs (our fbank for ``fbank``)."""
    import onnxruntime as ort

    x, n = fbank_features(wav[None], torch.tensor([wav.shape[0]])) if kind == "fbank" else \
        (wav[None], torch.tensor([wav.shape[0]]))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = KINDS[kind].inputs
    out, lens = sess.run(None, {names[0]: x.numpy().astype(np.float32), names[1]: n.numpy().astype(np.int64)})
    return out[0, : int(lens[0])]


def check_audio(paths: list[str]) -> list[torch.Tensor]:
    """The utterances an export is checked on: the files given, or 1.3 s and 0.7 s of noise."""
    from espnet_distill.data.audio import load_audio_file

    if paths:
        return [torch.from_numpy(load_audio_file(p)) for p in paths]
    g = torch.Generator().manual_seed(1)
    return [0.1 * torch.randn(n, generator=g) for n in (20800, 11200)]


def compare(model, kind: str, out: Path, audio: list[torch.Tensor]) -> dict:
    """Largest |log-prob| difference and greedy-path agreement of model.onnx and model.int8.onnx
    against PyTorch on ``audio``."""
    report = {}
    for name in ("model.onnx", "model.int8.onnx"):
        diffs, same = [], 0
        for wav in audio:
            ref, got = torch_log_probs(model, wav), onnx_log_probs(out / name, kind, wav)
            if ref.shape != got.shape:
                raise ExportError(f"{out / name}: {got.shape[0]} frames where PyTorch gives {ref.shape[0]}")
            diffs.append(float(np.abs(ref - got).max()))
            same += int(np.array_equal(ref.argmax(-1), got.argmax(-1)))
        report[name] = {"max_abs_diff": max(diffs), "same_best_path": f"{same}/{len(audio)}"}
    return report


def export_asr(exp_dir: str | Path, out: str | Path, model_file: str | None = None, audio: list[str] = (),
               atol: float = 1e-3, overwrite: bool = False) -> dict:
    """Export the CTC branch of ``exp_dir`` to ``out`` (module docstring) and check it; returns the report."""
    from espnet_distill.asr.task import load_model

    exp = Experiment.read(exp_dir)
    out = Path(out)
    if out.resolve() == exp.path.resolve() or exp.path.resolve() in out.resolve().parents:
        raise ExportError(f"{out}: inside the experiment folder {exp.path}; give a folder of its own")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; remove it or pass --overwrite")
    mfile = Path(model_file) if model_file and Path(model_file).is_file() else exp.model_file(model_file)
    model, args = load_model(exp.path / "config.yaml", mfile, "cpu")
    kind = kind_of(model)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    export_graph(model, kind, tmp / "model.onnx")
    vocab = model.ctc.ctc_lo.out_features
    meta = {"model_type": "wenet_ctc" if kind == "fbank" else "espnet_distill_waveform_ctc", "version": "1",
            "model_author": "espnet_distill", "comment": f"non-streaming; exported from {exp.name}",
            "vocab_size": vocab, "subsampling_factor": 2}
    add_metadata(tmp / "model.onnx", meta)
    quantize_int8(tmp / "model.onnx", tmp / "model.int8.onnx")
    write_tokens(list(model.token_list), tmp / "tokens.txt")
    info = {"kind": kind, "runtime": KINDS[kind].runtime, "source": str(exp.path.resolve()), "model_file": mfile.name,
            "vocab_size": vocab, "blank_id": model.blank_id, "token_type": args.token_type,
            "min_samples": FRAME_WINDOW, "frame_shift_ms": 20, "has_decoder": exp.has_decoder,
            "features": FBANK_FEATURES if kind == "fbank" else {"input": "16 kHz float waveform in [-1, 1]"}}
    (tmp / "export.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.copy(Path(onnx_runner.__file__), tmp / "transcribe.py")
    report = compare(model, kind, tmp, check_audio(list(audio)))
    info["check"] = report
    sizes = {n: (tmp / n).stat().st_size for n in ("model.onnx", "model.int8.onnx")}
    info["bytes"] = sizes
    (tmp / "export.json").write_text(json.dumps(info, indent=1) + "\n")
    (tmp / "README.md").write_text(model_card(exp, info))
    if report["model.onnx"]["max_abs_diff"] > atol:
        shutil.rmtree(tmp)
        raise ExportError(f"{exp.path}: the fp32 export differs from PyTorch by "
                          f"{report['model.onnx']['max_abs_diff']:.2e} > --atol {atol}; nothing written")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    logger.info("exported %s (%s) to %s", exp.path, kind, out)
    return info


def describe(out: Path, info: dict) -> str:
    """One line on an export: its kind, runtime, sizes and differences from PyTorch."""
    check, mb = info["check"], {n: b / 1e6 for n, b in info["bytes"].items()}
    return (f"{out}: {info['kind']} model for {info['runtime']}; model.onnx {mb['model.onnx']:.2f} MB (largest "
            f"log-prob difference from PyTorch {check['model.onnx']['max_abs_diff']:.2e}), model.int8.onnx "
            f"{mb['model.int8.onnx']:.2f} MB ({check['model.int8.onnx']['max_abs_diff']:.2e})")


def _scores(exp: Experiment) -> str:
    rows = []
    for f in sorted(exp.path.glob("decode_ctc_greedy_*/scores.json")):
        s = json.loads(f.read_text())
        wer, cer = (s.get(k, {}).get("sclite", s.get(k, {})).get("err") for k in ("wer", "cer"))
        rows.append(f"| {f.parent.name.removeprefix('decode_ctc_greedy_')} | {wer} | {cer} |")
    if not rows:
        return "No stage-6 scores in the experiment folder at export time.\n"
    return "Stage 6, PyTorch CTC greedy (from the experiment's scores.json):\n\n| set | WER % | CER % |\n" \
           "|---|---|---|\n" + "\n".join(rows) + "\n"


def model_card(exp: Experiment, info: dict) -> str:
    """README.md of an exported folder: what it is, how to run it, how it was checked."""
    check = info["check"]
    mb = {n: f"{b / 1e6:.2f} MB" for n, b in info["bytes"].items()}
    feats = info["features"]
    if info["kind"] == "fbank":
        run = ("sherpa-onnx's offline WeNet-CTC model type (`OfflineRecognizer`, any of its APIs) loads `model.onnx` "
               "and `tokens.txt`; it computes the fbank itself. Set its feature options to this model's: "
               f"`feature_dim={feats['num_mel_bins']}`, `low_freq={feats['low_freq']:g}`, "
               f"`high_freq={feats['high_freq']:g}` (Nyquist), `snip_edges=true`, `dither=0`. sherpa-onnx's defaults "
               "differ (`high_freq=-400`, i.e. 7600 Hz, and `snip_edges=false`): with them every mel filter moves and "
               "the frame count changes by a frame or two, which this model was not trained with. `transcribe.py` "
               "sets them. Text: tokens joined, `▁` is a space.")
        need = "pip install sherpa-onnx soundfile numpy"
    else:
        run = ("No sherpa-onnx model type takes this graph as it is (its waveform type, Omnilingual-ASR CTC, "
               "normalises each utterance first, which this model was not trained with): run it with ONNX Runtime, as "
               "`transcribe.py` does (inputs `wav` (N, L) float32 16 kHz in [-1, 1], `wav_lens` int64; CTC greedy "
               "over `log_probs`, blank id 0).")
        need = "pip install onnxruntime soundfile numpy"
    decoder = ("\nThe model also has an attention decoder; this export is its CTC branch.\n"
               if info["has_decoder"] else "")
    rows = "\n".join(f"| {f} | {mb[f]} | {check[f]['max_abs_diff']:.2e} | {check[f]['same_best_path']} |"
                     for f in ("model.onnx", "model.int8.onnx"))
    return f"""# {exp.name}: CTC ASR for on-device use

Exported by `python -m espnet_distill.bin.export --to sherpa-onnx {info['source']} OUT` from `{info['model_file']}`.
Kind `{info['kind']}`, runtime {info['runtime']}; {info['vocab_size']} tokens (`tokens.txt`, {info['token_type']},
blank id {info['blank_id']}); 20 ms output frames; at least {info['min_samples']} samples (25 ms) of 16 kHz audio.
{decoder}
| file | size | largest log-prob difference from PyTorch | same greedy path |
|---|---|---|---|
{rows}

(checked on the export's check audio, with our own features for the fbank kind.)

{_scores(exp)}
## Run it

{run}

On a machine with only `{need}`:

    python transcribe.py a.wav b.flac          # --int8 for model.int8.onnx, --threads N, --json

or, with espnet_distill installed, `python -m espnet_distill.bin.transcribe --model THIS_FOLDER a.wav`.
"""
