"""Register our frontend and encoder in ESPnet's ASR task.

ESPnet builds models from ``ClassChoices`` registries (``--frontend``, ``--encoder``, ...).
We add ``distilled`` (espnet_distill.asr.frontend.DistilledFrontend) and ``passthrough``
(PassThroughEncoder) to ESPnet's ASRTask registries, so that every ESPnet entry point run
through ours (``espnet_distill.bin.asr_train``, ``espnet_distill.bin.asr_inference``) accepts
them and otherwise behaves exactly like espnet2's: same options, same outputs.
"""
from __future__ import annotations

from espnet2.tasks import asr as espnet_asr

from espnet_distill.asr.frontend import DistilledFrontend, PassThroughEncoder

ASRTask = espnet_asr.ASRTask


def register() -> None:
    """Idempotently add our classes to ESPnet's ASR registries."""
    espnet_asr.frontend_choices.classes["distilled"] = DistilledFrontend
    espnet_asr.encoder_choices.classes["passthrough"] = PassThroughEncoder
