"""Speaker-independent Kaldi dirs from the Free Spoken Digit Dataset (wav.scp names the 8 kHz
originals; they are resampled to 16 kHz when read).

    python -m espnet_distill.bin.prepare_fsdd --recordings downloads/free-spoken-digit-dataset/recordings \\
        --data-root data \\
        --set fsdd_train=jackson,theo,nicolas,yweweler --set fsdd_dev=lucas --set fsdd_test=george
"""
from __future__ import annotations

import logging
import sys

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.corpora.fsdd import FSDDError, prepare


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("prepare_fsdd", __doc__)
    p.add_argument("--recordings", required=True, help="FSDD's recordings/ folder")
    p.add_argument("--data-root", required=True, help="where the Kaldi dirs go")
    p.add_argument("--set", action="append", required=True, metavar="NAME=SPK1,SPK2",
                   help="a data dir and its speakers (repeat the option)")
    a = p.parse_args(argv)
    split = {}
    for s in a.set:
        name, _, spks = s.partition("=")
        split[name] = [x for x in spks.split(",") if x]
    try:
        prepare(a.recordings, a.data_root, split)
    except FSDDError as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
