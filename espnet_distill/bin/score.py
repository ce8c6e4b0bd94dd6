"""Score hypotheses against references Kaldi-style (WER and CER: sclite's counts, our alignment as the cross-check).

    python -m espnet_distill.bin.score --ref data/test/text --hyp exp/asr/x/decode_test/text \\
        --utt2spk data/test/utt2spk --outdir exp/asr/x/decode_test [--case lower] [--punctuation remove]

Writes OUTDIR/score_wer/ and OUTDIR/score_cer/ (ref.trn, hyp.trn, sclite's result.txt with
per-speaker and summary tables) and OUTDIR/scores.json, and prints
``%WER 12.34 [ 123 / 1000, 10 ins, 20 del, 93 sub ]`` lines. A missing --ref file means the set
has no transcripts: hypotheses are kept and scoring is skipped with a message.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from espnet_distill.asr.score import score_dir
from espnet_distill.bin import add_text_norm_args, new_parser, setup_logging
from espnet_distill.data.tables import read_table
from espnet_distill.data.text import normalize_text


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("score", __doc__)
    p.add_argument("--ref", required=True, help="Kaldi text with the reference transcripts")
    p.add_argument("--hyp", required=True, help="Kaldi text with the hypotheses (empty lines allowed)")
    p.add_argument("--utt2spk", default=None, help="utt2spk for sclite's per-speaker table")
    p.add_argument("--outdir", required=True, help="where score_wer/, score_cer/ and scores.json go")
    p.add_argument("--cross-check", choices=["auto", "always", "never"], default="auto",
                   help="recount with our own alignment and compare costs with sclite's (auto: when the set is "
                        "small enough for it to take under a minute)")
    add_text_norm_args(p, "both texts before scoring")
    a = p.parse_args(argv)
    if not Path(a.ref).is_file():
        logging.warning("%s not found: this set has no transcripts; hypotheses are in %s, scoring skipped", a.ref,
                        a.hyp)
        return 0
    norm = lambda t: normalize_text(t, a.case, a.punctuation)  # noqa: E731
    ref = {k: norm(v) for k, v in read_table(a.ref).items}
    hyp = {k: norm(v) for k, v in read_table(a.hyp, allow_empty_value=True).items}
    u2s = read_table(a.utt2spk).as_dict() if a.utt2spk else {}
    out = {}
    for unit, name in (("word", "wer"), ("char", "cer")):
        result, ours, sclite = score_dir(ref, hyp, u2s, Path(a.outdir) / f"score_{name}", unit, a.cross_check)
        print(result.kaldi_line(name.upper()))
        out[name] = {"result": asdict(result), "source": "sclite" if sclite else "ours", "rate": result.rate(),
                     "ours": asdict(ours) if ours else None, "sclite": asdict(sclite) if sclite else None}
    with open(Path(a.outdir) / "scores.json", "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
