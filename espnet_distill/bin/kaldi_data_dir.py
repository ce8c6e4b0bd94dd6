"""New Kaldi data dirs from others, under Kaldi's signatures (the engines behind utils/copy_data_dir.sh,
combine_data_dir.sh, split_data.sh, split_scp.sh and perturb_data_dir_speed.sh).

    python -m espnet_distill.bin.kaldi_data_dir copy [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] \\
        [--spk-suffix S] SRC DST
    python -m espnet_distill.bin.kaldi_data_dir combine DST SRC1 SRC2 ...
    python -m espnet_distill.bin.kaldi_data_dir split-scp [--utt2spk FILE] SCP OUT1 OUT2 ...
    python -m espnet_distill.bin.kaldi_data_dir split [--per-utt] DIR N
    python -m espnet_distill.bin.kaldi_data_dir perturb-speed FACTOR SRC DST

No tool writes into its source. Every error names the file, the line and what is wrong, and exits 1.
"""
from __future__ import annotations

import argparse
import logging
import sys

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.data.audio import AudioError
from espnet_distill.data.kaldi_compat import copy_renamed, perturb_speed, split_data
from espnet_distill.data.kaldi_dir import combine_data_dirs, split_scp
from espnet_distill.data.tables import DataDirError


def copy(a) -> str:
    n = copy_renamed(a.src, a.dst, a.utt_prefix, a.utt_suffix, a.spk_prefix, a.spk_suffix)
    return f"{a.dst}: copied {n} utterances from {a.src}"


def split(a) -> str:
    parts = split_data(a.dir, a.n, a.per_utt)
    return f"{a.dir}: split into {len(parts)} parts under {parts[0].parent}"


def perturb(a) -> str:
    return f"{a.dst}: {perturb_speed(a.src, a.dst, a.factor)} utterances of {a.src} at speed {a.factor:g}"


COMMANDS = {  # each returns a line to log, or None
    "copy": copy,
    "combine": lambda a: f"{a.dst}: combined {combine_data_dirs(a.dst, a.srcs)} utterances from {len(a.srcs)} dirs",
    "split": split,
    "split-scp": lambda a: split_scp(a.scp, a.outputs, utt2spk=a.utt2spk),
    "perturb-speed": perturb,
}


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("kaldi_data_dir", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("combine", help="concatenate data dirs (ids must be unique)")
    c.add_argument("dst", help="destination data dir (created)")
    c.add_argument("srcs", nargs="+", help="source data dirs")
    sp = sub.add_parser("split-scp", help="split an scp-like file into contiguous near-equal parts")
    sp.add_argument("--utt2spk", help="keep every speaker's utterances in one part")
    sp.add_argument("scp", help="input file")
    sp.add_argument("outputs", nargs="+", help="output files (their number is the number of parts)")
    cp = sub.add_parser("copy", help="Kaldi's copy_data_dir.sh: a copy with prefixed/suffixed ids")
    for opt in ("--utt-prefix", "--utt-suffix", "--spk-prefix", "--spk-suffix"):
        cp.add_argument(opt, default="",
                        help=f"{opt[2:].replace('-', ' ')} added to the ids (--{opt[2:]}=-x for a leading dash)")
    cp.add_argument("src", help="source data dir")
    cp.add_argument("dst", help="destination data dir")
    sd = sub.add_parser("split", help="Kaldi's split_data.sh: DIR/splitN/{1..N}, speakers kept whole")
    sd.add_argument("--per-utt", action="store_true", help="split by utterance (DIR/splitNutt/), not by speaker")
    sd.add_argument("dir", help="data dir")
    sd.add_argument("n", type=int, help="number of parts")
    ps = sub.add_parser("perturb-speed", help="Kaldi's perturb_data_dir_speed.sh FACTOR SRC DST (sox speed)")
    ps.add_argument("factor", type=float, help="speed factor (0.9, 1.1, ...)")
    ps.add_argument("src", help="source data dir")
    ps.add_argument("dst", help="destination data dir")
    return p


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    a = build_parser().parse_args(argv)
    try:
        said = COMMANDS[a.cmd](a)
        if said:
            logging.info("%s", said)
    except (DataDirError, AudioError, OSError, ValueError) as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
