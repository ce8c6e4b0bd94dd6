"""Transcription of audio files with a fine-tuned model: the experiment folder or packed model a
user names, the model file chosen in it, and :class:`Transcriber` (CTC greedy, CTC restricted to a
grammar, or ESPnet's attention beam search). The command line: ``python -m
espnet_distill.bin.transcribe --help``."""
from __future__ import annotations

from pathlib import Path

import torch

from espnet_distill.asr.decode import ctc_best_of, ctc_greedy_texts, grammar_candidates
from espnet_distill.asr.experiment import Experiment
from espnet_distill.data.audio import FRAME_WINDOW

MIN_SAMPLES = FRAME_WINDOW  # HuBERT's CNN: one frame needs 25 ms of 16 kHz audio


def archive_kind(path: Path) -> str:
    """What a file given as ``--model`` is: ``"pack"`` (a zip or tar archive of bin/pack_model, with
    its meta.yaml), ``"checkpoint"`` (a torch file: a zip holding ``data.pkl``) or ``"other"``."""
    import tarfile
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
            if any(n.endswith("data.pkl") for n in names):
                return "checkpoint"
            return "pack" if any(n.endswith("meta.yaml") for n in names) else "other"
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                return "pack" if any(n.endswith("meta.yaml") for n in t.getnames()) else "other"
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError):
        return "other"
    return "other"


def exported_folder(model: Path, runtime: str = "torch") -> Path | None:
    """The folder of ``bin/export --to sherpa-onnx`` that ``--model`` means: the folder itself; with
    ``runtime`` onnx also the one a packed model holds (``pack_model --onnx``; unpacked beside it,
    once). None where the model runs in torch; ValueError where onnx is asked for and there is none."""
    if (model / "export.json").is_file():
        return model
    if runtime != "onnx":
        return None
    if model.is_file() and archive_kind(model) == "pack":
        from espnet2.main_funcs.pack_funcs import unpack

        root = model.parent / f".{model.name}.unpacked"
        unpack(model, root)
        found = sorted(root.rglob("export.json"))
        if found:
            return found[0].parent
        raise ValueError(f"--model {model}: the pack holds no exported folder (pack it with pack_model --onnx DIR)")
    raise ValueError(f"--runtime onnx: {model} is neither a folder of bin/export --to sherpa-onnx "
                     "nor a pack holding one")


def resolve_model(model: Path, model_file: str | None) -> tuple[Path, Path | None, Path | None]:
    """``(experiment folder, config.yaml or None, model file or None)`` of ``--model`` and
    ``--model-file``: a packed model is unpacked beside itself (once); a ``--model-file`` that is not
    a path to a file is looked up inside the folder. Errors name what is wrong."""
    config = None
    if not model.exists():
        raise FileNotFoundError(f"--model {model}: no such experiment folder or packed model")
    if model.is_file():
        kind = archive_kind(model)
        if kind == "checkpoint":
            raise ValueError(f"--model {model}: a torch checkpoint, not an experiment folder or a packed model; give "
                             "a fine-tuned model's folder (exp/asr/<model>) and, to pick its file, --model-file")
        if kind != "pack":
            raise ValueError(f"--model {model}: not a packed model (an archive of bin/pack_model holding meta.yaml; "
                             "truncated, or another file)")
        from espnet2.main_funcs.pack_funcs import unpack

        files = unpack(model, model.parent / f".{model.name}.unpacked")
        config = Path(files["asr_train_config"])
        model, model_file = config.parent, model_file or files["asr_model_file"]
    if config is None:
        Experiment.read(model)  # a folder without config.yaml is not an experiment: ConfigError
    if model_file is None:
        return model, config, None
    path = Path(model_file)
    if not path.is_file() and (model / path).is_file():
        path = model / path
    if path.is_dir():
        raise ValueError(f"--model-file {model_file}: a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"--model-file {model_file}: not a file, nor one in {model}")
    return model, config, path


class Transcriber:
    """A fine-tuned model and its decoders: ``transcriber(wav) -> text`` for 16 kHz float audio."""

    def __init__(self, exp: Path, model_file: Path | None = None, device: str = "cpu", decoding: str = "auto",
                 beam_size: int = 5, ctc_weight: float = 0.3, config: Path | None = None,
                 grammar: list[str] | None = None):
        from espnet_distill.asr.task import load_model

        self.exp, self.device = exp, device
        model_file = model_file or Experiment.read(exp).model_file()
        config = config or exp / "config.yaml"
        self.model, self.args = load_model(config, model_file, device)
        has_decoder = getattr(self.model, "decoder", None) is not None
        if grammar is not None and decoding == "attention":
            raise ValueError("a grammar restricts CTC decoding; use --decoding ctc (or auto) with --grammar")
        if decoding == "auto":
            decoding = "ctc" if grammar is not None or not has_decoder else "attention"
        if decoding == "attention" and not has_decoder:
            raise ValueError(f"{exp}: this model has no decoder; use --decoding ctc")
        self.decoding = decoding
        self.bpe_model = getattr(self.args, "bpemodel", None)
        self.grammar, self.candidates = grammar, None
        if grammar is not None:
            self.decoding = "ctc grammar"
            self.candidates = grammar_candidates(self.model.token_list, grammar, self.args.token_type,
                                                 self.bpe_model if self.args.token_type == "bpe" else None)
        self.speech2text = None
        if decoding == "attention":
            from espnet2.bin.asr_inference import Speech2Text

            self.speech2text = Speech2Text(asr_train_config=str(config), asr_model_file=None,  # weights: ours
                                           device=device, beam_size=beam_size, ctc_weight=ctc_weight, lm_weight=0.0,
                                           nbest=1)
            self.speech2text.asr_model.load_state_dict(self.model.state_dict())

    @torch.no_grad()
    def __call__(self, wav) -> str:
        x = torch.as_tensor(wav, dtype=torch.float32)[None].to(self.device)
        if self.speech2text is not None:
            text, *_ = self.speech2text(x[0])[0]
            return text or ""
        enc, enc_lens = self.model.encode(x, torch.tensor([x.shape[1]], device=self.device))
        token_list = self.model.token_list
        blank = token_list.index("<blank>") if "<blank>" in token_list else 0
        if self.candidates is not None:
            best = ctc_best_of(self.model.ctc.log_softmax(enc), enc_lens, self.candidates, blank)
            return self.grammar[int(best[0])]
        return ctc_greedy_texts(self.model, enc, enc_lens, self.bpe_model if self.args.token_type == "bpe" else None)[0]
