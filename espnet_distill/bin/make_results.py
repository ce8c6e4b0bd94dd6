"""RESULTS.md tables from scored decodings.

    python -m espnet_distill.bin.make_results exp-table --exp exp/asr/dt_cnn_train_10min --out .../RESULTS.md
    python -m espnet_distill.bin.make_results summary --asr-dir exp/asr --benchmark exp/asr/benchmark.json \\
        --test-sets dev test --out RESULTS.md

    python -m espnet_distill.bin.make_results claims --asr-dir exp/claims/asr \\
        --benchmark exp/claims/asr/benchmark.json \\
        --finetune-set train_10min --test-sets dev test --out CLAIMS.md

exp-table: ESPnet-style |dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err| tables (WER and CER) for
every decode_*/scores.json of one experiment. summary: one row per ASR experiment and decoding
(CTC greedy, CTC greedy with int8 linear layers, attention beam search, beam search with the LM
of --lm-dir, the exported graphs) with the frontend's
parameters, its forward time per second of audio, and WER/CER per test set; then WER over the
fine-tuning seeds with sclite's significance tests, and int8 against float. claims: the paper's
claims (:data:`CLAIMS`) as run by ``local/claims.sh``, each a comparison of two models over seeds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from espnet_distill.analysis.results import CLAIMS, claims_document, claims_table, exp_table, results_document, summary
from espnet_distill.bin import new_parser


def main(argv: list[str] | None = None) -> int:
    p = new_parser("make_results", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("exp-table", help="RESULTS.md of one ASR experiment")
    e.add_argument("--exp", required=True, help="ASR experiment folder (with decode_*/scores.json)")
    e.add_argument("--out", required=True, help="output markdown file")
    s = sub.add_parser("summary", help="one row per ASR experiment")
    s.add_argument("--asr-dir", required=True, help="folder of the ASR experiments (exp/asr)")
    s.add_argument("--benchmark", required=True, help="benchmark.json from espnet_distill.bin.benchmark")
    s.add_argument("--test-sets", nargs="+", required=True, help="sets to report")
    s.add_argument("--baseline", default="scratch", help="model every other one is tested against (default scratch)")
    s.add_argument("--lm-dir", default=None, help="the LM of LM decoding (exp/lm), described in its section")
    s.add_argument("--out", required=True, help="output markdown file")
    c = sub.add_parser("claims", help="the paper's claims table of local/claims.sh")
    c.add_argument("--asr-dir", required=True, help="folder of the claims run's ASR experiments (exp/claims/asr)")
    c.add_argument("--benchmark", required=True, help="its benchmark.json")
    c.add_argument("--finetune-set", required=True, help="the fine-tuning set of the claims (e.g. train_10min)")
    c.add_argument("--test-sets", nargs="+", required=True, help="sets to report; the last one gives the verdicts")
    c.add_argument("--elapsed", type=int, default=0, help="seconds the run took (reported)")
    c.add_argument("--command", default="", help="the command that made the run (reported)")
    c.add_argument("--only", nargs="+", default=None, metavar="CLAIM",
                   help="report these claims only (e.g. C5), for a run that measured only them")
    c.add_argument("--out", required=True, help="output markdown file")
    a = p.parse_args(argv)
    if a.cmd == "exp-table":
        Path(a.out).write_text(exp_table(Path(a.exp)) + "\n")
    elif a.cmd == "claims":
        bench = json.loads(Path(a.benchmark).read_text())
        comparisons = [c for c in CLAIMS if a.only is None or c.claim in a.only]
        if not comparisons:
            p.error(f"--only {' '.join(a.only)}: no such claim (claims: {' '.join(sorted({c.claim for c in CLAIMS}))})")
        table = claims_table(Path(a.asr_dir), bench, a.finetune_set, a.test_sets, comparisons)
        text = claims_document(table, a.finetune_set, a.elapsed, a.command)
        Path(a.out).write_text(text)
        print(table)
    else:
        bench = json.loads(Path(a.benchmark).read_text())
        table = summary(Path(a.asr_dir), bench, a.test_sets)
        text = results_document(Path(a.asr_dir), table, a.test_sets, a.baseline, Path(a.lm_dir) if a.lm_dir else None)
        Path(a.out).write_text(text)
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
