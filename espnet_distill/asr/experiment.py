"""An ESPnet experiment folder of this toolkit (``exp/asr/<model>``), read in one place: its
``config.yaml``, the model file to use, and the distilled student it started from. Stage 6 (through
``python -m espnet_distill.bin.experiment``), ``transcribe``, ``pack_model``, ``analyze`` and the
RESULTS.md tables all read experiments through :class:`Experiment`.

The model file, unless one is named: the averaged model of each ``best_model_criterion`` of the
config (the selection the model was trained with), then their best single epochs, then
:data:`MODEL_FILES` in that order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from espnet_distill.config import ConfigError, read_yaml

# The ASR protocols of stage 5 (--asr_protocols), each with the suffix of its experiments' names,
# exp/asr/<frontend>_<set><suffix>[_seed<N>]: whole-model fine-tuning (the student trains with a
# CTC layer on top), and SUPERB's (the student frozen, a learned weighted sum of its layers under a
# BLSTM and CTC: conf/asr/superb.yaml)
PROTOCOL_SUFFIX = {"finetune": "", "superb": "_superb"}

MODEL_FILES = ("valid.acc.ave.pth", "valid.cer_ctc.ave.pth", "valid.loss.ave.pth",
               "valid.acc.best.pth", "valid.cer_ctc.best.pth", "valid.loss.best.pth")


@dataclass(frozen=True)
class Experiment:
    path: Path
    config: dict

    @classmethod
    def read(cls, path: str | Path) -> Experiment:
        """The folder's config.yaml; ConfigError when there is none (not an ESPnet experiment)."""
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"{path}: no config.yaml: not an ESPnet experiment folder")
        return cls(path, read_yaml(path / "config.yaml"))

    @classmethod
    def all_in(cls, asr_dir: str | Path) -> list[Experiment]:
        """Every experiment folder of ``asr_dir``, by name."""
        return [cls.read(p) for p in sorted(Path(asr_dir).iterdir()) if (p / "config.yaml").is_file()]

    @property
    def name(self) -> str:
        return self.path.name

    def model_file_candidates(self) -> list[str]:
        """Model file names, best first (the module's docstring says the order)."""
        criteria = [c for c in self.config.get("best_model_criterion") or []
                    if isinstance(c, (list, tuple)) and len(c) >= 2]
        names = [f"{c[0]}.{c[1]}.{kind}.pth" for kind in ("ave", "best") for c in criteria]
        return list(dict.fromkeys(names + list(MODEL_FILES)))

    def model_file(self, name: str | None = None) -> Path:
        """``name`` inside the folder, or (None or ``auto``) the first candidate that exists;
        FileNotFoundError lists the model files the folder has."""
        names = self.model_file_candidates() if name in (None, "auto") else [name]
        for n in names:
            if (self.path / n).exists():
                return self.path / n
        have = " ".join(sorted(p.name for p in self.path.glob("*.pth"))) or "none"
        raise FileNotFoundError(f"{self.path}: no model file {' or '.join(names)} (it has: {have})")

    @property
    def student_checkpoint(self) -> str | None:
        """The student (or teacher) checkpoint the frontend started from (``frontend_conf.checkpoint``), if any."""
        return (self.config.get("frontend_conf") or {}).get("checkpoint")

    @property
    def has_decoder(self) -> bool:
        """Whether the model has an attention decoder (else CTC only)."""
        return self.config.get("decoder") not in (None, "none", "")
