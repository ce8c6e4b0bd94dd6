"""A subset of a Kaldi data dir (the engine behind utils/subset_data_dir.sh), in two forms:

    python -m espnet_distill.bin.subset_data_dir (--first N | --random N [--seed S] | --speakers A,B
        | --seconds S [--seed S] | --utt-list FILE | --spk-list FILE) SRC DST
    python -m espnet_distill.bin.subset_data_dir --kaldi [first|last|shortest|speakers|per-spk|evenly] SRC N DST

The second is Kaldi's ``subset_data_dir.sh [--MODE] SRC N DST`` (no mode: N utterances spread
evenly; speakers: whole speakers up to about N utterances). Both run the selectors of
espnet_distill/data/subset.py; asking for more utterances than SRC has is an error, as in Kaldi.
The source is only read. Every error names the file, the line and what is wrong, and exits with
status 1.
"""
from __future__ import annotations

import logging
import sys

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.data.audio import AudioError
from espnet_distill.data.subset import subset_data_dir
from espnet_distill.data.tables import DataDirError

KALDI_MODES = {"evenly": "evenly", "first": "first", "last": "last", "shortest": "shortest",
               "speakers": "whole-speakers", "per-spk": "per-spk"}  # Kaldi's flag -> our selector
OUR_FLAGS = ("first", "random", "speakers", "seconds", "utt_list", "spk_list")  # each a selector of that name


def parse(argv: list[str]) -> tuple[str, str, str, object, int]:
    """argv of either form -> (src, dst, selector, value, seed)."""
    if argv[:1] == ["--kaldi"]:
        k = new_parser("subset_data_dir --kaldi", __doc__)
        k.add_argument("mode", choices=list(KALDI_MODES), help="how the N utterances are chosen")
        k.add_argument("src", help="source data dir")
        k.add_argument("n", type=int, help="number of utterances (per speaker with per-spk)")
        k.add_argument("dst", help="destination data dir")
        a = k.parse_args(argv[1:])
        return a.src, a.dst, KALDI_MODES[a.mode], a.n, 0
    p = new_parser("subset_data_dir", __doc__)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--first", type=int, help="the first N utterances (sorted order)")
    g.add_argument("--random", type=int, help="N utterances drawn at random with --seed")
    g.add_argument("--speakers", help="comma-separated speaker ids: all their utterances")
    g.add_argument("--seconds", type=float, help="random utterances (with --seed) up to this total duration")
    g.add_argument("--utt-list", help="the utterances listed in this file (first field of each line)")
    g.add_argument("--spk-list", help="every utterance of the speakers listed in this file")
    p.add_argument("--seed", type=int, default=0, help="random seed for --random and --seconds (default 0)")
    p.add_argument("src", help="source data dir")
    p.add_argument("dst", help="destination data dir (created)")
    a = p.parse_args(argv)
    flag = next(f for f in OUR_FLAGS if getattr(a, f) is not None)
    return a.src, a.dst, flag.replace("_", "-"), getattr(a, flag), a.seed


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    src, dst, how, value, seed = parse(sys.argv[1:] if argv is None else argv)
    try:
        n = subset_data_dir(src, dst, how, value, seed)
    except (DataDirError, AudioError, OSError) as e:
        logging.error("%s", e)
        return 1
    logging.info("%s: wrote %d utterances from %s (%s %s)", dst, n, src, how, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
