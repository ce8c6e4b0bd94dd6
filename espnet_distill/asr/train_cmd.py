"""The command line of ESPnet ASR training as ``espnet_distill.bin.asr_train`` completes and checks
it before handing it to ESPnet: what ESPnet cannot know about the distilled frontend (its
architecture, its width) added, and a ``specaug`` that would mask the student's last layer refused.
"""
from __future__ import annotations

from espnet_distill.config import read_yaml


def option(cmd: list[str], name: str, conf: dict):
    """The value of ``--name`` on the command line (last one wins), else in the config."""
    value = conf.get(name)
    for i, arg in enumerate(cmd):
        if arg == f"--{name}" and i + 1 < len(cmd):
            value = cmd[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def config_of(cmd: list[str]) -> tuple[str | None, dict]:
    """The ``--config`` file of ``cmd`` and its content ({} without one)."""
    config = option(cmd, "config", {})
    return config, (read_yaml(config) if config else {})


def check_specaug(cmd: list[str]) -> str | None:
    """An error message when ESPnet's ``specaug`` is asked for with the distilled frontend under the
    passthrough encoder: ESPnet applies it to the frontend's output, which there is the student's
    last layer right before the CTC head, not the features entering the transformer that HuBERT
    fine-tuning masks. Under an encoder of its own (SUPERB's BLSTM) masking that output is the protocol."""
    config, conf = config_of(cmd)
    specaug = option(cmd, "specaug", conf)
    if (option(cmd, "frontend", conf) == "distilled" and option(cmd, "encoder", conf) == "passthrough"
            and specaug not in (None, "none", "null", "")):
        return (f"{config or 'the command line'}: specaug: {specaug} with frontend: distilled would mask the "
                "student's last layer (ESPnet applies specaug to the frontend's output); remove it and mask the "
                "transformer's input instead with frontend_conf: mask_time_prob / mask_channel_prob")
    return None


def with_upstream_architecture(cmd: list[str]) -> list[str]:
    """``cmd`` plus ``--frontend_conf upstream={...}``: the distilled frontend's architecture goes
    into the experiment's config.yaml, so that the fine-tuned model (whose model file holds every
    weight) works after it is moved or packed, without the student checkpoint. With a linear
    preencoder whose ``input_size`` the config leaves out, also ``--preencoder_conf input_size=D``,
    the frontend's width (one SUPERB config serves students and teachers of any width)."""
    import json

    from espnet_distill.asr.frontend import describe_upstream, described_dim

    _, conf = config_of(cmd)
    if option(cmd, "frontend", conf) != "distilled" or "--print_config" in cmd or "--help" in cmd:
        return cmd
    checkpoint = (conf.get("frontend_conf") or {}).get("checkpoint")
    for i, arg in enumerate(cmd):
        if arg == "--frontend_conf" and i + 1 < len(cmd) and cmd[i + 1].startswith("checkpoint="):
            checkpoint = cmd[i + 1].split("=", 1)[1]
    if not checkpoint:
        return cmd
    upstream = describe_upstream(checkpoint)
    cmd = cmd + ["--frontend_conf", "upstream=" + json.dumps(upstream)]
    given = "input_size" in (conf.get("preencoder_conf") or {}) or any(
        a == "--preencoder_conf" and b.startswith("input_size=") for a, b in zip(cmd, cmd[1:]))
    if option(cmd, "preencoder", conf) == "linear" and not given:
        cmd += ["--preencoder_conf", f"input_size={described_dim(upstream)}"]
    return cmd
