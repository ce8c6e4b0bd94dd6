"""Build the embedded synthetic English corpus (used by egs2/synth_en/distill1/local/data.sh).

    python -m espnet_distill.bin.synth_corpus plan  --out DIR [--seed S] [--train-hours H] ...
    python -m espnet_distill.bin.synth_corpus synth --spec SPEC.scp --wav-dir DIR [--seed S]
    python -m espnet_distill.bin.synth_corpus dir   --spec SPEC.scp --wav-dir DIR --data-dir DIR
    python -m espnet_distill.bin.synth_corpus stats --data-root DIR --sets train dev test [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.corpora import synth_en


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("synth_corpus", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    pl = sub.add_parser("plan", help="draw sentences and speakers; write OUT/{train,dev,test}/spec.scp")
    pl.add_argument("--out", required=True, help="output folder for the plan")
    pl.add_argument("--seed", type=int, default=0, help="random seed (the whole corpus is a function of it)")
    pl.add_argument("--train-hours", type=float, default=1.0, help="approximate hours of training audio")
    pl.add_argument("--dev-utts", type=int, default=200, help="utterances in dev")
    pl.add_argument("--test-utts", type=int, default=200, help="utterances in test")
    pl.add_argument("--train-speakers", type=int, default=12, help="number of training speakers")
    pl.add_argument("--dev-speakers", type=int, default=2, help="number of dev speakers (disjoint from train)")
    pl.add_argument("--test-speakers", type=int, default=2,
                    help="number of test speakers (disjoint from train and dev)")
    pl.add_argument("--reverb-prob", type=float, default=0.0, help="fraction of utterances with sox reverb")
    pl.add_argument("--noise-prob", type=float, default=0.0, help="fraction of utterances with additive white noise")
    pl.add_argument("--snr-range", type=float, nargs=2, default=(10.0, 30.0), metavar=("LO", "HI"),
                    help="SNR range in dB")

    sy = sub.add_parser("synth", help="render the utterances of one spec shard to wavs (resumable)")
    sy.add_argument("--spec", required=True, help="spec.scp (or a shard of it)")
    sy.add_argument("--wav-dir", required=True, help="where the wavs go (<wav-dir>/<spk>/<utt>.wav)")
    sy.add_argument("--seed", type=int, default=0, help="seed for the additive noise")

    d = sub.add_parser("dir", help="write the Kaldi data dir of a synthesized set")
    d.add_argument("--spec", required=True, help="the set's spec.scp")
    d.add_argument("--wav-dir", required=True, help="where the wavs are")
    d.add_argument("--data-dir", required=True, help="Kaldi data dir to write")
    d.add_argument("--seed", type=int, default=0, help="the seed the wavs were synthesized with")

    st = sub.add_parser("stats", help="print corpus statistics")
    st.add_argument("--data-root", required=True, help="folder holding the data dirs")
    st.add_argument("--sets", nargs="+", required=True, help="data dirs under --data-root")
    st.add_argument("--train-set", default="train", help="set whose vocabulary defines OOVs")
    st.add_argument("--json", help="also write the statistics to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    a = build_parser().parse_args(argv)
    if a.cmd == "plan":
        plan = synth_en.plan_corpus(
            a.out, a.seed, a.train_hours, a.dev_utts, a.test_utts, a.train_speakers, a.dev_speakers,
            a.test_speakers, a.reverb_prob, a.noise_prob, tuple(a.snr_range),
        )
        for name, specs in plan.items():
            logging.info("planned %s: %d utterances, %d speakers", name, len(specs), len({s.spk for s in specs}))
    elif a.cmd == "synth":
        n = synth_en.synthesize_specs(a.spec, a.wav_dir, a.seed)
        logging.info("%s: synthesized %d new wavs", a.spec, n)
    elif a.cmd == "dir":
        synth_en.write_data_dir(a.spec, a.wav_dir, a.data_dir, a.seed)
    elif a.cmd == "stats":
        s = synth_en.corpus_stats(a.data_root, a.sets, a.train_set)
        print(f"{'set':<16}{'utts':>7}{'hours':>8}{'spk':>5}{'words':>8}{'OOV':>8}")
        for name, v in s["sets"].items():
            oov = f"{100 * v['oov_rate']:.2f}%" if "oov_rate" in v else "-"
            print(f"{name:<16}{v['utts']:>7}{v['hours']:>8.3f}{v['speakers']:>5}{v['words']:>8}{oov:>8}")
        print(f"vocabulary: {s['vocab_train']} words in train, {s['vocab_all']} in all sets, "
              f"{s['grammar_vocab']} in the grammar")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(s, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
