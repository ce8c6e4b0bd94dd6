"""ESPnet ASR decoding (espnet2.bin.asr_inference) for models with our frontend.

Same options and outputs as ``python -m espnet2.bin.asr_inference``; --help lists them.
"""
import re
import sys

from espnet2.bin.asr_inference import get_parser
from espnet2.bin.asr_inference import main as espnet_main

from espnet_distill.asr.task import register


def print_help() -> None:
    """espnet2's own --help trips over a bare '%' in one help string; escape them first."""
    parser = get_parser()
    for action in parser._actions:
        if action.help:
            action.help = re.sub(r"%(?![(%])", "%%", action.help)
    parser.print_help()


def main(cmd=None):
    cmd = sys.argv[1:] if cmd is None else cmd
    register()  # the distilled frontend and the passthrough encoder
    if "-h" in cmd or "--help" in cmd:
        print_help()
        return
    espnet_main(cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
