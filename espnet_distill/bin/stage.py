"""The bookkeeping of distill.sh's stages (espnet_distill/stages.py says what each stage reads).

    python -m espnet_distill.bin.stage begin NUM   # prints run or skip; moves or resumes earlier results
    python -m espnet_distill.bin.stage end NUM     # writes EXPDIR/<stage>/.done

The recipe's options come from the environment (distill.sh exports them). An option a stage
declares but the environment lacks, or a file system error, exits 1 with one line.
"""
from __future__ import annotations

import logging
import os
import sys

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.stages import STAGES, begin, end

COMMANDS = {"begin": lambda num: print("run" if begin(num, os.environ) else "skip"),
            "end": lambda num: end(num, os.environ)}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("stage", __doc__)
    p.add_argument("cmd", choices=sorted(COMMANDS), help="begin: run or skip the stage; end: mark it finished")
    p.add_argument("num", type=int, choices=sorted(STAGES), help="stage number")
    a = p.parse_args(argv)
    try:
        COMMANDS[a.cmd](a.num)
    except (KeyError, OSError) as e:
        logging.error("stage %d: %s", a.num, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
