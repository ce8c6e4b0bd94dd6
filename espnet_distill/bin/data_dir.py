"""Kaldi data dirs checked, repaired and described (the engines behind utils/validate_data_dir.sh,
fix_data_dir.sh, utt2spk_to_spk2utt.sh and data/get_utt2dur.sh; ``key`` serves the recipe).

    python -m espnet_distill.bin.data_dir validate [--no-audio] [--no-text] DIR
    python -m espnet_distill.bin.data_dir fix DIR
    python -m espnet_distill.bin.data_dir utt2spk-to-spk2utt UTT2SPK [SPK2UTT]
    python -m espnet_distill.bin.data_dir utt2dur [--nj N] DIR
    python -m espnet_distill.bin.data_dir key [--tables wav.scp,utt2spk,...] DIR ...

Tools that write new dirs from others: bin/subset_data_dir.py (subsets) and bin/kaldi_data_dir.py
(copy, combine, split, split-scp, perturb-speed).
Every error names the file, the line and what is wrong, and exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import sys

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.data.audio import AudioError
from espnet_distill.data.fingerprint import TABLES, data_key
from espnet_distill.data.kaldi_dir import fix_data_dir, utt2spk_to_spk2utt, validate_data_dir, write_utt2dur
from espnet_distill.data.tables import DataDirError, read_table, write_table


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("data_dir", __doc__)
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

    u = sub.add_parser("utt2spk-to-spk2utt", help="invert utt2spk")
    u.add_argument("utt2spk", help="input utt2spk")
    u.add_argument("spk2utt", nargs="?", help="output (default: stdout)")

    d = sub.add_parser("utt2dur", help="write DIR/utt2dur from segments or the audio file headers (no decoding)")
    d.add_argument("--nj", type=int, default=1, help="processes reading headers in parallel (default 1)")
    d.add_argument("dir", help="Kaldi data dir")

    ky = sub.add_parser("key", help="print a 16-digit key of the dirs' tables and audio files (path, size, mtime)")
    ky.add_argument("--tables", default=",".join(TABLES), help=f"tables in the key (default {','.join(TABLES)})")
    ky.add_argument("dirs", nargs="+", help="Kaldi data dirs")
    return p


def validate(a) -> str:
    summary = validate_data_dir(a.dir, check_audio=not a.no_audio, need_text=not a.no_text, progress=True)
    extra = f", {summary['seconds'] / 3600:.3f} h" if "seconds" in summary else ""
    return f"{a.dir}: OK ({summary['utts']} utterances, {summary['spks']} speakers{extra})"


def utt2dur(a) -> str:
    durs = write_utt2dur(a.dir, a.nj)
    return f"{a.dir}/utt2dur: {len(durs)} utterances, {sum(durs.values()) / 3600:.2f} h"


def spk2utt(a) -> str | None:
    items = utt2spk_to_spk2utt(read_table(a.utt2spk).items)
    if a.spk2utt:
        write_table(a.spk2utt, items)
    else:
        sys.stdout.writelines(f"{k} {v}\n" for k, v in items)
    return None


COMMANDS = {  # each returns a line to log, or None
    "validate": validate,
    "fix": lambda a: None if fix_data_dir(a.dir) else None,  # fix_data_dir logs what it dropped itself
    "utt2spk-to-spk2utt": spk2utt,
    "utt2dur": utt2dur,
    "key": lambda a: print(data_key(a.dirs, a.tables.split(","))),
}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        said = COMMANDS[args.cmd](args)
    except (DataDirError, AudioError, OSError, ValueError) as e:
        logging.error("%s", e)
        return 1
    if said:
        logging.info("%s", said)
    return 0


if __name__ == "__main__":
    sys.exit(main())
