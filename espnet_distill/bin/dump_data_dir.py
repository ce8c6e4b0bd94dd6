"""Rewrite a Kaldi data dir into the plain form ESPnet reads: 16 kHz mono audio files, normalised
text, and (for training sets) utterances outside [min, max] seconds dropped with a count.

    # audio, one job per shard (a killed job resumes where it stopped)
    python -m espnet_distill.bin.dump_data_dir audio --data-dir data/train --out dump/raw/train --shard 1 --num-shards 4
    # the dir itself: wav.scp text utt2spk spk2utt utt2dur, and `dropped` (utterance, reason, seconds)
    python -m espnet_distill.bin.dump_data_dir finish --data-dir data/train --out dump/raw/train --num-shards 4 \\
        --filter true --min-seconds 0.1 --max-seconds 20 --case lower --punctuation remove

Text rule: case folded (--case), every Unicode punctuation character removed except apostrophes
inside words (--punctuation remove), whitespace collapsed.
"""
from __future__ import annotations

import logging
import sys

from espnet2.utils.types import str2bool

from espnet_distill.bin import add_text_norm_args, new_parser, setup_logging
from espnet_distill.data.audio import SAMPLE_RATE, AudioError
from espnet_distill.data.dump import FORMATS, finish, write_shard
from espnet_distill.data.tables import DataDirError


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("dump_data_dir", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("audio", "write the audio of one shard"), ("finish", "write the dumped data dir")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--data-dir", required=True, help="the source Kaldi data dir")
        s.add_argument("--out", required=True, help="the dumped data dir (audio/ and parts/ go inside it)")
        s.add_argument("--num-shards", type=int, default=1, help="how many audio jobs split the utterances")
        s.add_argument("--audio-format", choices=sorted(FORMATS), default="flac", help="file format of the audio")
        if name == "audio":
            s.add_argument("--shard", type=int, default=1, help="which shard this job writes (1-based)")
            s.add_argument("--rate", type=int, default=SAMPLE_RATE,
                           help="sample rate of the written audio (default %(default)s; lower: band-limited copies "
                                "for data preparation, which our reader brings back to 16 kHz; ESPnet's stages need "
                                "16000). finish reads it from the audio jobs' parts")
        else:
            s.add_argument("--filter", type=str2bool, default=True,
                           help="drop utterances outside [--min-seconds, --max-seconds] or with empty text "
                                "(true for training sets; test sets keep every utterance)")
            s.add_argument("--min-seconds", type=float, default=0.1, help="shortest utterance kept when filtering")
            s.add_argument("--max-seconds", type=float, default=20.0,
                           help="longest utterance kept when filtering (0: no limit)")
            add_text_norm_args(s, "the transcripts")
    a = p.parse_args(argv)
    try:
        if a.cmd == "audio":
            n = write_shard(a.data_dir, a.out, a.shard, a.num_shards, a.audio_format, rate=a.rate)
            logging.info("%s shard %d/%d: %d utterances", a.out, a.shard, a.num_shards, n)
        else:
            finish(a.data_dir, a.out, a.num_shards, a.audio_format, a.filter, a.min_seconds,
                   a.max_seconds if a.max_seconds > 0 else None, a.case, a.punctuation)
    except (ValueError, AudioError, DataDirError) as e:  # DumpError and a bad --shard are ValueErrors
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
