"""RESULTS.md tables from scored decodings.

    python -m espnet_distill.bin.make_results exp-table --exp exp/asr/dt_cnn_train_10min --out .../RESULTS.md
    python -m espnet_distill.bin.make_results summary --asr-dir exp/asr --benchmark exp/asr/benchmark.json \\
        --test-sets dev test --out RESULTS.md

exp-table: ESPnet-style |dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err| tables (WER and CER) for
every decode_*/scores.json of one experiment. summary: one row per ASR experiment with the
frontend's parameters, its forward time per second of audio, and WER/CER per test set.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from espnet_distill.asr.score import Counts, results_row

HEADER = "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|\n|---|---|---|---|---|---|---|---|---|"


def decodes(exp: Path) -> list[tuple[str, dict]]:
    return [(p.parent.name, json.loads(p.read_text())) for p in sorted(exp.glob("decode_*/scores.json"))]


def exp_table(exp: Path) -> str:
    lines = [f"# {exp.name}", ""]
    for metric in ("wer", "cer"):
        lines += [f"## {metric.upper()}", "", HEADER]
        for name, s in decodes(exp):
            lines.append(results_row(name, Counts(**s[metric]["result"])))
        lines.append("")
    return "\n".join(lines)


def summary(asr_dir: Path, bench: list[dict], test_sets: list[str]) -> str:
    by_ckpt = {str(Path(r["checkpoint"]).resolve()): r for r in bench if r.get("checkpoint")}
    cols = [f"{x} {m}" for x in test_sets for m in ("WER", "CER")]
    lines = ["| model | decoding | params (M, no heads) | ms per audio-s (batch 1) | " + " | ".join(cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for exp in sorted(p for p in asr_dir.iterdir() if (p / "config.yaml").is_file()):
        conf = yaml.safe_load((exp / "config.yaml").read_text())
        ckpt = str(Path((conf.get("frontend_conf") or {}).get("checkpoint", "")).resolve())
        r = by_ckpt.get(ckpt)
        params = f"{(r['params']['frontend'] + r['params']['encoder']) / 1e6:.2f}" if r else "-"
        speed = f"{1e3 * r['time']['1']['total']:.1f}" if r else "-"
        kinds = sorted({name.split("_")[1] + "_" + name.split("_")[2] for name, _ in decodes(exp)})
        for kind in kinds:  # ctc_greedy, att_beam
            cells = []
            for x in test_sets:
                p = exp / f"decode_{kind}_{x}" / "scores.json"
                s = json.loads(p.read_text()) if p.is_file() else None
                cells += [f"{s['wer']['rate']:.2f}" if s else "-", f"{s['cer']['rate']:.2f}" if s else "-"]
            lines.append(f"| {exp.name} | {kind.replace('_', ' ')} | {params} | {speed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environments() -> str:
    """ESPnet's "Environments" block: when and with what the results were made."""
    import datetime
    import platform
    import subprocess

    import espnet
    import torch

    def git(*args: str) -> str:
        root = Path(__file__).resolve().parents[2]
        r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else "unknown"

    commit = git("rev-parse", "HEAD")
    dirty = " (with uncommitted changes)" if commit != "unknown" and git("status", "--porcelain", "--untracked-files=no") else ""
    return "\n".join([
        "## Environments",
        f"- date: `{datetime.datetime.now().astimezone().strftime('%a %b %d %H:%M:%S %Z %Y')}`",
        f"- python version: `{platform.python_version()}`",
        f"- espnet version: `espnet {espnet.__version__}`",
        f"- pytorch version: `pytorch {torch.__version__}`",
        f"- espnet_distill commit: `{commit}`{dirty}",
        f"- machine: `{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}`",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make_results", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("exp-table", help="RESULTS.md of one ASR experiment")
    e.add_argument("--exp", required=True, help="ASR experiment folder (with decode_*/scores.json)")
    e.add_argument("--out", required=True, help="output markdown file")
    s = sub.add_parser("summary", help="one row per ASR experiment")
    s.add_argument("--asr-dir", required=True, help="folder of the ASR experiments (exp/asr)")
    s.add_argument("--benchmark", required=True, help="benchmark.json from espnet_distill.bin.benchmark")
    s.add_argument("--test-sets", nargs="+", required=True, help="sets to report")
    s.add_argument("--out", required=True, help="output markdown file")
    a = p.parse_args(argv)
    if a.cmd == "exp-table":
        Path(a.out).write_text(exp_table(Path(a.exp)) + "\n")
    else:
        bench = json.loads(Path(a.benchmark).read_text())
        table = summary(Path(a.asr_dir), bench, a.test_sets)
        text = ("# Results\n\nWritten by stage 6 of the recipe (espnet_distill.bin.make_results). WER/CER in %, "
                "scored with sclite after the recipe's text normalisation; speed is the frontend's measured forward "
                "time on this machine.\n\n" + environments() + "\n\n" + table + "\n")
        Path(a.out).write_text(text)
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
