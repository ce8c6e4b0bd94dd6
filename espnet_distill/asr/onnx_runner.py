"""Transcribe with an exported ASR folder (``bin/export --to sherpa-onnx``), without torch.

This file imports numpy, soundfile and one runtime only (sherpa-onnx for the ``fbank`` kind,
ONNX Runtime for the ``waveform`` kind), never torch, ESPnet or espnet_distill: the exporter copies
it into the folder as ``transcribe.py``, so that a device with only ``pip install sherpa-onnx
soundfile numpy`` (or ``onnxruntime soundfile numpy``) runs

    python transcribe.py [--int8] [--threads N] a.wav b.flac ...
    python transcribe.py --scp wav.scp --out text --stats stats.json    # a Kaldi list of audio files

and ``python -m espnet_distill.bin.transcribe --model FOLDER a.wav`` uses the same code.

The folder: ``model.onnx``, ``model.int8.onnx``, ``tokens.txt`` (``token id`` per line, the CTC
blank as ESPnet numbers it, ``▁`` for a space) and ``export.json`` (the kind, the runtime, the
features). ``fbank``: sherpa-onnx's WeNet-CTC type computes the 80-bin Kaldi fbank and runs the
graph from there (``x`` (N, T, 80), ``x_lens`` -> ``log_probs``, ``log_probs_lens``).
``waveform``: the graph takes 16 kHz float audio (``wav`` (N, L) in [-1, 1], ``wav_lens``) and
gives the same outputs; CTC greedy search here.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SPACE = "\u2581"  # sentencepiece's word boundary, the space of tokens.txt


def read_tokens(path: Path) -> list[str]:
    """tokens.txt (``token id`` per line) as a list indexed by id."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}:{n}: expected 'token id', got {line!r}")
        pairs.append((int(parts[1]), parts[0]))
    tokens = [t for _, t in sorted(pairs)]
    if [i for i, _ in sorted(pairs)] != list(range(len(tokens))):
        raise ValueError(f"{path}: ids are not 0..{len(tokens) - 1}")
    return tokens


def tokens_to_text(pieces: list[str]) -> str:
    return "".join(pieces).replace(SPACE, " ").strip()


def ctc_greedy(log_probs: np.ndarray, n: int, blank: int) -> list[int]:
    """Best path of (T, V) log-probs over the first n frames: repeats merged, blanks dropped."""
    best = log_probs[:n].argmax(-1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(i) for i in best[keep] if i != blank]


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by the real FFT (the signal's spectrum cut or zero-padded)."""
    if rate == target:
        return x
    n = int(round(len(x) * target / rate))
    spec = np.fft.rfft(x)
    keep = min(len(spec), n // 2 + 1)
    out = np.zeros(n // 2 + 1, dtype=np.complex128)
    out[:keep] = spec[:keep]
    return (np.fft.irfft(out, n) * (n / len(x))).astype(np.float32)


def read_audio(path: str) -> np.ndarray:
    """An audio file as 16 kHz mono float32 in [-1, 1] (channels averaged)."""
    import soundfile as sf

    if not Path(path).is_file():
        raise ValueError(f"{path}: file not found")
    try:
        x, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors are terse
        raise ValueError(f"{path}: not readable as audio ({e})") from None
    if x.shape[0] == 0:
        raise ValueError(f"{path}: no samples")
    return resample(x.mean(axis=1), rate)


class Recognizer:
    """An exported folder: ``recognizer(wav) -> text`` for 16 kHz float32 audio."""

    def __init__(self, folder: str | Path, int8: bool = False, threads: int = 1):
        self.folder = Path(folder)
        meta_path = self.folder / "export.json"
        if not meta_path.is_file():
            raise ValueError(f"{self.folder}: no export.json: not a folder of bin/export --to sherpa-onnx")
        self.meta = json.loads(meta_path.read_text())
        self.model = self.folder / ("model.int8.onnx" if int8 else "model.onnx")
        if not self.model.is_file():
            raise ValueError(f"{self.model}: missing from the exported folder")
        self.tokens = read_tokens(self.folder / "tokens.txt")
        self.blank = int(self.meta.get("blank_id", 0))
        self.min_samples = int(self.meta.get("min_samples", 400))
        self.kind = self.meta["kind"]
        self.runtime = RUNTIMES[self.kind](self, threads)

    def __call__(self, wav: np.ndarray) -> str:
        if len(wav) < self.min_samples:
            raise ValueError(f"too short: {len(wav) / SAMPLE_RATE:.3f} s; the model needs at least "
                             f"{self.min_samples / SAMPLE_RATE:.3f} s")
        return self.runtime(np.ascontiguousarray(wav, dtype=np.float32))


def sherpa_fbank(rec: Recognizer, threads: int):
    """sherpa-onnx's offline WeNet-CTC recognizer with the features export.json names."""
    import sherpa_onnx
    from sherpa_onnx.lib._sherpa_onnx import OfflineRecognizer  # the binding: it takes a whole config

    feats = rec.meta["features"]
    config = sherpa_onnx.OfflineRecognizerConfig(
        feat_config=sherpa_onnx.FeatureExtractorConfig(
            sampling_rate=SAMPLE_RATE, feature_dim=int(feats["num_mel_bins"]), low_freq=float(feats["low_freq"]),
            high_freq=float(feats["high_freq"]), dither=0.0, snip_edges=bool(feats["snip_edges"])),
        model_config=sherpa_onnx.OfflineModelConfig(
            wenet_ctc=sherpa_onnx.OfflineWenetCtcModelConfig(model=str(rec.model)),
            tokens=str(rec.folder / "tokens.txt"),
            num_threads=threads, model_type="wenet_ctc"),
        decoding_method="greedy_search")
    recognizer = OfflineRecognizer(config)

    def run(wav: np.ndarray) -> str:
        stream = recognizer.create_stream()
        stream.accept_waveform(SAMPLE_RATE, wav)
        recognizer.decode_stream(stream)
        return tokens_to_text([stream.result.text])

    return run


def ort_waveform(rec: Recognizer, threads: int):
    """ONNX Runtime on the waveform graph, CTC greedy search."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(rec.model), opts, providers=["CPUExecutionProvider"])

    def run(wav: np.ndarray) -> str:
        log_probs, n = session.run(None, {"wav": wav[None], "wav_lens": np.array([len(wav)], dtype=np.int64)})
        return tokens_to_text([rec.tokens[i] for i in ctc_greedy(log_probs[0], int(n[0]), rec.blank)])

    return run


RUNTIMES = {"fbank": sherpa_fbank, "waveform": ort_waveform}


def read_scp(path: str) -> list[tuple[str, str]]:
    """``utt file`` lines of a Kaldi wav.scp of plain audio files (a pipe or an ark offset is refused)."""
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[1].rstrip().endswith("|") or ".ark:" in parts[1]:
            raise ValueError(f"{path}:{n}: expected 'utt audio_file' (a plain file, not a pipe or an ark), "
                             f"got {line!r}")
        items.append((parts[0], parts[1].strip()))
    return items


def peak_rss_mb() -> float:
    """This process's peak resident memory: Linux's VmHWM (counted from this program's start; the
    ``ru_maxrss`` of getrusage keeps the peak of the parent that forked it), else ``ru_maxrss``
    (macOS reports it in bytes, others in KiB)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource  # not on Windows; Linux answered above

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None, folder: str | None = None) -> int:
    p = argparse.ArgumentParser(prog="transcribe.py", description="Transcribe audio files with this exported model "
                                "(file<TAB>text per line; --json: a JSON object per line with timings).")
    if folder is None:
        p.add_argument("--model", default=str(Path(__file__).resolve().parent), help="the exported folder")
    p.add_argument("--int8", action="store_true", help="use model.int8.onnx (dynamic int8 quantization)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    p.add_argument("--json", action="store_true", help="one JSON object per line, with timings")
    p.add_argument("--scp", help="a Kaldi wav.scp of audio files to transcribe (instead of AUDIO); with --out")
    p.add_argument("--out", help="with --scp: write 'utt text' lines here (Kaldi's text)")
    p.add_argument("--stats", help="write the run's totals here (JSON): audio and decoding seconds, real-time "
                                   "factor, peak memory of this process")
    p.add_argument("audio", nargs="*", help="audio files (any rate and channel count)")
    a = p.parse_args(argv)
    try:
        if bool(a.scp) == bool(a.audio) or bool(a.scp) != bool(a.out):
            raise ValueError("give audio files, or --scp with --out")
        items = read_scp(a.scp) if a.scp else [(path, path) for path in a.audio]
        rec = Recognizer(folder or a.model, a.int8, a.threads)
    except (ValueError, OSError, KeyError, ImportError) as e:
        print(f"transcribe: {e}", file=sys.stderr)
        return 2
    failed, hyps, audio_s, decode_s = 0, [], 0.0, 0.0
    for key, path in items:
        try:
            wav = read_audio(path)
            t0 = time.perf_counter()
            text = rec(wav)
            seconds = time.perf_counter() - t0
        except ValueError as e:
            failed += 1
            print(f"transcribe: {path}: {e}" if not str(e).startswith(path) else f"transcribe: {e}", file=sys.stderr)
            continue
        audio_s, decode_s = audio_s + len(wav) / SAMPLE_RATE, decode_s + seconds
        hyps.append(f"{key} {text}".rstrip())
        if a.json:
            print(json.dumps({"file": path, "text": text, "audio_seconds": round(len(wav) / SAMPLE_RATE, 3),
                              "decode_seconds": round(seconds, 4), "runtime": rec.meta["runtime"]}), flush=True)
        elif not a.scp:
            print(f"{path}\t{text}", flush=True)
    if a.out:
        Path(a.out).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    if a.stats:
        Path(a.stats).write_text(json.dumps({
            "runtime": rec.meta["runtime"], "model": rec.model.name, "threads": a.threads, "utterances": len(hyps),
            "failed": failed, "audio_seconds": round(audio_s, 3), "decode_seconds": round(decode_s, 3),
            "rtf": round(decode_s / audio_s, 5) if audio_s else None, "model_bytes": rec.model.stat().st_size,
            "peak_rss_mb": round(peak_rss_mb(), 1)}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
