"""What an ESPnet experiment folder of this toolkit holds, for shell recipes (stage 6 decodes with it).

    python -m espnet_distill.bin.experiment model-file EXP [--name auto|FILE]   # the model file to use
    python -m espnet_distill.bin.experiment has-decoder EXP                     # true or false

The model file ``auto``: the averaged model of each ``best_model_criterion`` of its config.yaml,
then their best epochs, then valid.{acc,cer_ctc,loss}.{ave,best}.pth (espnet_distill/asr/experiment.py).
Errors (no config.yaml, no such model file: the ones it has are listed) exit 1 with one line.
"""
from __future__ import annotations

import sys

from espnet_distill.asr.experiment import Experiment
from espnet_distill.bin import new_parser
from espnet_distill.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    p = new_parser("experiment", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model-file", help="print the path of the model file to use")
    m.add_argument("exp", help="experiment folder (exp/asr/<model>)")
    m.add_argument("--name", default="auto", help="a file name inside EXP, or auto (see above)")
    d = sub.add_parser("has-decoder", help="print true when the model has an attention decoder, else false")
    d.add_argument("exp", help="experiment folder (exp/asr/<model>)")
    a = p.parse_args(argv)
    try:
        experiment = Experiment.read(a.exp)
        print(experiment.model_file(a.name) if a.cmd == "model-file" else str(experiment.has_decoder).lower())
    except (ConfigError, FileNotFoundError) as e:
        print(f"experiment: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
