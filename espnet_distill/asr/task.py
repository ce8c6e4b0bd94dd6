"""Register our frontend and encoder in ESPnet's ASR task.

ESPnet builds models from ``ClassChoices`` registries (``--frontend``, ``--encoder``, ...).
We add ``distilled`` (espnet_distill.asr.frontend.DistilledFrontend) and ``passthrough``
(PassThroughEncoder) to ESPnet's ASRTask registries, so that every ESPnet entry point run
through ours (``espnet_distill.bin.asr_train``, ``espnet_distill.bin.asr_inference``) accepts
them and otherwise behaves exactly like espnet2's: same options, same outputs.
"""
from __future__ import annotations

from pathlib import Path

from espnet2.tasks import asr as espnet_asr

from espnet_distill.asr.frontend import DistilledFrontend, PassThroughEncoder
from espnet_distill.checkpoint_io import CheckpointError, safe_load

ASRTask = espnet_asr.ASRTask


def register() -> None:
    """Idempotently add our classes to ESPnet's ASR registries."""
    espnet_asr.frontend_choices.classes["distilled"] = DistilledFrontend
    espnet_asr.encoder_choices.classes["passthrough"] = PassThroughEncoder


def load_model(config: str | Path, model_file: str | Path, device: str = "cpu"):
    """A fine-tuned model: built from ESPnet's ``config.yaml``, its weights read from ``model_file``
    by us, weights-only (ESPnet's own loader unpickles when ESPNET_ALLOW_UNSAFE_TORCH_LOAD is set).
    Returns (model in eval mode on ``device``, ESPnet's args); a file that is not this model's
    state dict is a CheckpointError naming it."""
    register()
    state = safe_load(model_file)
    model, args = ASRTask.build_model_from_file(config, None, device)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{model_file}: not a model of {config} (missing weights {missing[:4]}, "
                              f"unexpected {unexpected[:4]}); give a model file of that experiment")
    return model.to(device).eval(), args
