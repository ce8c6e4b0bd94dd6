"""Transcribe audio files with a fine-tuned model: no Kaldi dir needed.

    python -m espnet_distill.bin.transcribe --model exp/asr/dt_fbank_train_10min a.wav b.flac ...
        [--decoding auto|ctc|attention] [--grammar FILE] [--device cpu|cuda] [--json]

``--model`` is an ESPnet experiment folder of this toolkit (its config.yaml and a model file: the
averaged ``valid.*.ave.pth`` or else ``valid.*.best.pth``; ``--model-file`` picks another), or a
folder of ``bin/export --to sherpa-onnx`` (run without torch by sherpa-onnx or ONNX Runtime, as its
export.json says; ``--int8`` takes model.int8.onnx, ``--threads`` the runtime's threads). The
folder can be moved or copied anywhere: the model file holds every weight and config.yaml the
frontend's architecture. Audio: anything libsndfile reads, any sample rate (resampled to 16 kHz),
any number of channels (averaged). Prints ``file<TAB>text`` per file (``--json``: one JSON object
per line with the file, the text, the audio seconds and the decoding seconds). A file that cannot
be transcribed (unreadable, empty, shorter than the model's 25 ms receptive field) gets a one-line
error on stderr naming it, the others are still transcribed, and the exit status is 1.

Decoding: CTC greedy (``ctc``), or ESPnet's attention beam search for models with a decoder
(``attention``, beam 5, CTC weight 0.3); ``auto`` picks attention where the model has a decoder.
``--grammar FILE`` restricts CTC decoding to the transcripts listed in FILE (closed vocabularies:
the one of highest CTC likelihood), as stage 6's grammar decoding.

The model file, where ``--model-file`` does not name one: the averaged model of the selection the
model was trained with (config.yaml's ``best_model_criterion``: ``valid.acc.ave.pth``,
``valid.cer_ctc.ave.pth``, ...), else its best single epoch.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch

from espnet_distill.asr.decode import read_grammar
from espnet_distill.asr.transcribe import MIN_SAMPLES, Transcriber, exported_folder, resolve_model
from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.data.audio import SAMPLE_RATE, AudioError, load_audio_file


def main(argv: list[str] | None = None) -> int:
    setup_logging(logging.WARNING)
    p = new_parser("transcribe", __doc__)
    p.add_argument("--model", required=True,
                   help="ESPnet experiment folder (exp/asr/<model>, or a copy of it), or an archive of bin/pack_model")
    p.add_argument("--model-file", default=None, help="model file inside it (default: the averaged one)")
    p.add_argument("--decoding", choices=["auto", "ctc", "attention"], default="auto", help="decoder (default auto)")
    p.add_argument("--beam-size", type=int, default=5, help="attention beam size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--grammar", default=None, metavar="FILE",
                   help="closed vocabulary (digits, commands): a file of the allowed transcripts, one per line; "
                        "each file gets the one of highest CTC likelihood (as stage 6's --grammar decoding)")
    p.add_argument("--json", action="store_true", help="one JSON object per line, with timings")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                   help="onnx: a packed model's exported folder (pack_model --onnx); exported folders always")
    p.add_argument("--int8", action="store_true", help="exported folders: model.int8.onnx instead of model.onnx")
    p.add_argument("--threads", type=int, default=1, help="exported folders: runtime threads (default 1)")
    p.add_argument("audio", nargs="+", help="audio files (any rate and channel count)")
    a = p.parse_args(argv)
    try:
        folder = exported_folder(Path(a.model), a.runtime)
        if folder is not None:  # sherpa-onnx or ONNX Runtime, as the folder's export.json says
            from espnet_distill.asr import onnx_runner

            return onnx_runner.main(["--threads", str(a.threads), *(["--int8"] if a.int8 else []),
                                     *(["--json"] if a.json else []), *a.audio], folder=str(folder))
        exp, config, model_file = resolve_model(Path(a.model), a.model_file)
        grammar = read_grammar(a.grammar) if a.grammar else None
        tr = Transcriber(exp, model_file, a.device, a.decoding, a.beam_size, config=config, grammar=grammar)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"transcribe: {e}", file=sys.stderr)
        return 2
    failed = 0
    for path in a.audio:
        try:
            wav = load_audio_file(path)
            if len(wav) < MIN_SAMPLES:
                raise AudioError(f"{path}: too short: {len(wav) / SAMPLE_RATE:.3f} s; the model needs at least "
                                 f"{MIN_SAMPLES / SAMPLE_RATE:.3f} s")
            t0 = time.perf_counter()
            text = tr(wav)
            seconds = time.perf_counter() - t0
        except AudioError as e:
            failed += 1
            print(f"transcribe: {e}", file=sys.stderr)
            continue
        if a.json:
            print(json.dumps({"file": path, "text": text, "audio_seconds": round(len(wav) / SAMPLE_RATE, 3),
                              "decode_seconds": round(seconds, 3), "decoding": tr.decoding}), flush=True)
        else:
            print(f"{path}\t{text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
