"""The bookkeeping of distill.sh's stages (espnet_distill/stages.py says what each stage reads).

    python -m espnet_distill.bin.stage begin NUM|STEP  # prints run or skip; moves or resumes earlier results
    python -m espnet_distill.bin.stage end NUM|STEP    # writes EXPDIR/<stage or step>/.done
    python -m espnet_distill.bin.stage asr-config SET  # prints the ESPnet config that fine-tunes on SET
    python -m espnet_distill.bin.stage asr-runs SET    # per protocol of asr_protocols: PROTOCOL SUFFIX|- CONFIG
    python -m espnet_distill.bin.stage asr-configs     # every config stage 5 trains with, one per line

A STEP (``lm``: the LM of --use_lm, in stage 6) has a marker of its own, kept as stages are.
The recipe's options come from the environment (distill.sh exports them). An option a stage
declares but the environment lacks, or a file system error, exits 1 with one line.
"""
from __future__ import annotations

import logging
import os
import sys

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.stages import STAGES, STEPS, asr_config_for, asr_configs, asr_runs, begin, end


def stage_or_step(arg: str) -> int | str:
    """A stage number of :data:`STAGES` or a step name of :data:`STEPS`."""
    if arg in STEPS:
        return arg
    if arg.isdigit() and int(arg) in STAGES:
        return int(arg)
    raise ValueError(arg)


def print_runs(finetune_set: str) -> None:
    """One ``PROTOCOL SUFFIX CONFIG`` line per protocol on ``finetune_set`` (an empty suffix as ``-``)."""
    for protocol, suffix, config in asr_runs(os.environ, finetune_set):
        print(protocol, suffix or "-", config)


COMMANDS = {"begin": lambda num: print("run" if begin(num, os.environ) else "skip"),
            "end": lambda num: end(num, os.environ),
            "asr-config": lambda finetune_set: print(asr_config_for(os.environ, finetune_set)),
            "asr-runs": print_runs,
            "asr-configs": lambda _: print("\n".join(asr_configs(os.environ)))}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("stage", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for cmd, what in (("begin", "run or skip the stage"), ("end", "mark the stage finished")):
        sub.add_parser(cmd, help=what).add_argument(
            "arg", type=stage_or_step, metavar="NUM|STEP",
            help=f"stage number ({min(STAGES)}-{max(STAGES)}) or step ({', '.join(STEPS)})")
    sub.add_parser("asr-config", help="the fine-tuning config of a set (asr_set_configs, else asr_config)") \
        .add_argument("arg", metavar="SET", help="a set of finetune_sets")
    sub.add_parser("asr-runs", help="the protocols of asr_protocols on a set: protocol, name suffix, config") \
        .add_argument("arg", metavar="SET", help="a set of finetune_sets")
    sub.add_parser("asr-configs", help="every ESPnet config of stage 5 (each protocol on each set), once")
    a = p.parse_args(argv)
    a.arg = getattr(a, "arg", "")
    try:
        COMMANDS[a.cmd](a.arg)
    except KeyError as e:  # str() of a KeyError quotes its message
        logging.error("stage %s %s: %s", a.cmd, a.arg, e.args[0])
        return 1
    except OSError as e:
        logging.error("stage %s %s: %s", a.cmd, a.arg, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
