"""ESPnet ASR training (espnet2.bin.asr_train) with our frontend and encoder registered.

    python -m espnet_distill.bin.asr_train --config conf/asr/ctc.yaml \\
        --frontend distilled --frontend_conf checkpoint=exp/distill/dt_cnn/student.pt ...

Every option of espnet2's asr_train is accepted; --help lists them. Under torchrun (or srun),
pass --ngpu 1 --multiprocessing_distributed false: one process per GPU. At the end every
process waits for the others (rank 0 still averages and saves models) and leaves the process
group cleanly; a rank that simply exited first could abort the whole job.
"""
import sys

import torch.distributed as dist

from espnet_distill.asr.task import ASRTask, register
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.config import ConfigError, read_yaml


def _option(cmd: list[str], name: str, conf: dict):
    """The value of ``--name`` on the command line (last one wins), else in the config."""
    value = conf.get(name)
    for i, arg in enumerate(cmd):
        if arg == f"--{name}" and i + 1 < len(cmd):
            value = cmd[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def check_specaug(cmd: list[str]) -> str | None:
    """An error message when ESPnet's ``specaug`` is asked for with the distilled frontend: ESPnet
    applies it to the frontend's output, which here is the student's last layer right before the
    CTC head, not the features entering the transformer that HuBERT fine-tuning masks."""
    conf: dict = {}
    config = _option(cmd, "config", {})
    if config:
        conf = read_yaml(config)
    specaug = _option(cmd, "specaug", conf)
    if _option(cmd, "frontend", conf) == "distilled" and specaug not in (None, "none", "null", ""):
        return (f"{config or 'the command line'}: specaug: {specaug} with frontend: distilled would mask the "
                "student's last layer (ESPnet applies specaug to the frontend's output); remove it and mask the "
                "transformer's input instead with frontend_conf: mask_time_prob / mask_channel_prob")
    return None


def with_upstream_architecture(cmd: list[str]) -> list[str]:
    """``cmd`` plus ``--frontend_conf upstream={...}``: the distilled frontend's architecture goes
    into the experiment's config.yaml, so that the fine-tuned model (whose model file holds every
    weight) works after it is moved or packed, without the student checkpoint."""
    import json

    from espnet_distill.asr.frontend import describe_upstream

    conf: dict = {}
    config = _option(cmd, "config", {})
    if config:
        conf = read_yaml(config)
    if _option(cmd, "frontend", conf) != "distilled" or "--print_config" in cmd or "--help" in cmd:
        return cmd
    checkpoint = (conf.get("frontend_conf") or {}).get("checkpoint")
    for i, arg in enumerate(cmd):
        if arg == "--frontend_conf" and i + 1 < len(cmd) and cmd[i + 1].startswith("checkpoint="):
            checkpoint = cmd[i + 1].split("=", 1)[1]
    if not checkpoint:
        return cmd
    return cmd + ["--frontend_conf", "upstream=" + json.dumps(describe_upstream(checkpoint))]


def main(cmd=None):
    cmd = sys.argv[1:] if cmd is None else cmd
    try:
        error = check_specaug(cmd)
    except ConfigError as e:  # a missing config, a YAML syntax error: one line
        sys.exit(f"asr_train: {e}")
    if error:
        sys.exit(f"asr_train: {error}")
    try:
        cmd = with_upstream_architecture(cmd)
    except (CheckpointError, OSError) as e:  # a missing or unreadable checkpoint: one line, not a traceback
        sys.exit(f"asr_train: {e}")
    register()  # the distilled frontend and the passthrough encoder
    ASRTask.main(cmd=cmd)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
