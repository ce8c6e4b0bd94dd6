"""Kaldi data-dir tools (the engines behind utils/*.sh).

    python -m espnet_distill.bin.data_dir validate [--no-audio] [--no-text] DIR
    python -m espnet_distill.bin.data_dir fix DIR
    python -m espnet_distill.bin.data_dir subset (--first N | --random N [--seed S] |
                                                 --speakers A,B | --seconds S [--seed S]) SRC DST
    python -m espnet_distill.bin.data_dir combine DST SRC1 SRC2 ...
    python -m espnet_distill.bin.data_dir split-scp [--utt2spk FILE] SCP OUT1 OUT2 ...
    python -m espnet_distill.bin.data_dir utt2spk-to-spk2utt UTT2SPK [SPK2UTT]
    python -m espnet_distill.bin.data_dir utt2dur [--nj N] DIR
    python -m espnet_distill.bin.data_dir subset-kaldi [--mode evenly|first|last|shortest|speakers|per-spk] SRC N DST
    python -m espnet_distill.bin.data_dir copy [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] SRC DST
    python -m espnet_distill.bin.data_dir split [--per-utt] DIR N
    python -m espnet_distill.bin.data_dir perturb-speed FACTOR SRC DST
    python -m espnet_distill.bin.data_dir key [--tables wav.scp,utt2spk,...] DIR ...

Every error names the file, the line and what is wrong, and exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import sys

from espnet_distill.bin import setup_logging
from espnet_distill.data.audio import AudioError
from espnet_distill.data.fingerprint import TABLES, data_key
from espnet_distill.data.kaldi_compat import (
    SUBSET_MODES,
    copy_renamed,
    perturb_speed,
    split_data,
    subset_kaldi,
    subset_lists,
)
from espnet_distill.data.kaldi_dir import (
    combine_data_dirs,
    fix_data_dir,
    split_scp,
    subset_data_dir,
    utt2spk_to_spk2utt,
    validate_data_dir,
    write_utt2dur,
)
from espnet_distill.data.tables import DataDirError, read_table, write_table


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="data_dir", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("validate", help="check a data dir; print the first problem and exit 1")
    v.add_argument("dir", help="Kaldi data dir (wav.scp, text, utt2spk, spk2utt, optional segments/reco2dur)")
    v.add_argument("--no-audio", "--no-wav", action="store_true", dest="no_audio",
                   help="do not read the audio of every utterance (--no-wav: Kaldi's name)")
    v.add_argument("--no-text", action="store_true", help="do not require a text file (unlabelled data)")
    for kaldi_flag in ("--no-feats", "--non-print", "--no-spk-sort"):  # Kaldi's; nothing to skip here
        v.add_argument(kaldi_flag, action="store_true", help=argparse.SUPPRESS)

    f = sub.add_parser("fix", help="keep utterances present in every file, sort, rebuild spk2utt")
    f.add_argument("dir", help="Kaldi data dir; originals are kept in DIR/.backup/")

    s = sub.add_parser("subset", help="copy a subset of a data dir")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--first", type=int, help="the first N utterances (sorted order)")
    g.add_argument("--random", type=int, help="N utterances drawn at random with --seed")
    g.add_argument("--speakers", help="comma-separated speaker ids: all their utterances")
    g.add_argument("--seconds", type=float, help="random utterances (with --seed) up to this total duration")
    g.add_argument("--utt-list", help="the utterances listed in this file (first field of each line)")
    g.add_argument("--spk-list", help="every utterance of the speakers listed in this file")
    s.add_argument("--seed", type=int, default=0, help="random seed for --random and --seconds (default 0)")
    s.add_argument("src", help="source data dir")
    s.add_argument("dst", help="destination data dir (created)")

    c = sub.add_parser("combine", help="concatenate data dirs (ids must be unique)")
    c.add_argument("dst", help="destination data dir (created)")
    c.add_argument("srcs", nargs="+", help="source data dirs")

    sp = sub.add_parser("split-scp", help="split an scp-like file into contiguous near-equal parts")
    sp.add_argument("--utt2spk", help="keep every speaker's utterances in one part")
    sp.add_argument("scp", help="input file")
    sp.add_argument("outputs", nargs="+", help="output files (their number is the number of parts)")

    u = sub.add_parser("utt2spk-to-spk2utt", help="invert utt2spk")
    u.add_argument("utt2spk", help="input utt2spk")
    u.add_argument("spk2utt", nargs="?", help="output (default: stdout)")

    k = sub.add_parser("subset-kaldi", help="Kaldi's subset_data_dir.sh [--MODE] SRC N DST")
    k.add_argument("--mode", default="evenly", choices=list(SUBSET_MODES), help="how the N utterances are chosen")
    k.add_argument("src", help="source data dir")
    k.add_argument("n", type=int, help="number of utterances (per speaker with --mode per-spk)")
    k.add_argument("dst", help="destination data dir")

    cp = sub.add_parser("copy", help="Kaldi's copy_data_dir.sh: a copy with prefixed/suffixed ids")
    for opt in ("--utt-prefix", "--utt-suffix", "--spk-prefix", "--spk-suffix"):
        cp.add_argument(opt, default="", help=f"{opt[2:].replace('-', ' ')} added to the ids")
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

    d = sub.add_parser("utt2dur", help="write DIR/utt2dur from segments or the audio file headers (no decoding)")
    d.add_argument("--nj", type=int, default=1, help="processes reading headers in parallel (default 1)")
    d.add_argument("dir", help="Kaldi data dir")

    ky = sub.add_parser("key", help="print a 16-digit key of the dirs' tables and audio files (path, size, mtime)")
    ky.add_argument("--tables", default=",".join(TABLES), help=f"tables in the key (default {','.join(TABLES)})")
    ky.add_argument("dirs", nargs="+", help="Kaldi data dirs")
    return p


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "validate":
            summary = validate_data_dir(args.dir, check_audio=not args.no_audio, need_text=not args.no_text, progress=True)
            extra = f", {summary['seconds'] / 3600:.3f} h" if "seconds" in summary else ""
            logging.info("%s: OK (%d utterances, %d speakers%s)", args.dir, summary["utts"], summary["spks"], extra)
        elif args.cmd == "fix":
            fix_data_dir(args.dir)
        elif args.cmd == "subset" and (args.utt_list or args.spk_list):
            n = subset_lists(args.src, args.dst, args.utt_list, args.spk_list)
            logging.info("%s: wrote %d utterances from %s", args.dst, n, args.src)
        elif args.cmd == "subset-kaldi":
            n = subset_kaldi(args.src, args.n, args.dst, args.mode)
            logging.info("%s: wrote %d utterances from %s (%s)", args.dst, n, args.src, args.mode)
        elif args.cmd == "copy":
            n = copy_renamed(args.src, args.dst, args.utt_prefix, args.utt_suffix, args.spk_prefix, args.spk_suffix)
            logging.info("%s: copied %d utterances from %s", args.dst, n, args.src)
        elif args.cmd == "split":
            parts = split_data(args.dir, args.n, args.per_utt)
            logging.info("%s: split into %d parts under %s", args.dir, len(parts), parts[0].parent)
        elif args.cmd == "perturb-speed":
            n = perturb_speed(args.src, args.dst, args.factor)
            logging.info("%s: %d utterances of %s at speed %g", args.dst, n, args.src, args.factor)
        elif args.cmd == "subset":
            n = subset_data_dir(
                args.src,
                args.dst,
                first=args.first,
                random_n=args.random,
                speakers=args.speakers.split(",") if args.speakers else None,
                seconds=args.seconds,
                seed=args.seed,
            )
            logging.info("%s: wrote %d utterances from %s", args.dst, n, args.src)
        elif args.cmd == "combine":
            n = combine_data_dirs(args.dst, args.srcs)
            logging.info("%s: combined %d utterances from %d dirs", args.dst, n, len(args.srcs))
        elif args.cmd == "split-scp":
            split_scp(args.scp, args.outputs, utt2spk=args.utt2spk)
        elif args.cmd == "utt2dur":
            durs = write_utt2dur(args.dir, args.nj)
            logging.info("%s/utt2dur: %d utterances, %.2f h", args.dir, len(durs), sum(durs.values()) / 3600)
        elif args.cmd == "key":
            print(data_key(args.dirs, args.tables.split(",")))
        elif args.cmd == "utt2spk-to-spk2utt":
            items = utt2spk_to_spk2utt(read_table(args.utt2spk).items)
            if args.spk2utt:
                write_table(args.spk2utt, items)
            else:
                sys.stdout.writelines(f"{k} {v}\n" for k, v in items)
    except (DataDirError, AudioError, OSError, ValueError) as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
