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


def seed_groups(asr_dir: Path) -> dict[str, dict[int | None, Path]]:
    """Experiments grouped by model: ``<frontend>_<set>`` or ``<frontend>_<set>_seed<N>`` -> {seed: dir}."""
    import re

    groups: dict[str, dict[int | None, Path]] = {}
    for exp in sorted(p for p in asr_dir.iterdir() if (p / "config.yaml").is_file()):
        m = re.match(r"^(.*)_seed(\d+)$", exp.name)
        base, seed = (m.group(1), int(m.group(2))) if m else (exp.name, None)
        groups.setdefault(base, {})[seed] = exp
    return groups


def seed_table(asr_dir: Path, test_sets: list[str], baseline: str = "scratch") -> str:
    """Per model: WER mean and spread over the fine-tuning seeds on each test set, and sclite's
    sc_stats MAPSSWE test against the ``baseline`` model fine-tuned on the same set with the same
    seed: how many seeds find the model significantly better / worse (p < 0.05)."""
    import statistics

    from espnet_distill.asr.significance import compare

    groups = seed_groups(asr_dir)
    bases = {b for b in groups if b.startswith(f"{baseline}_")}
    header = ["model", "decoding", "seeds"] + [f"{x} WER (mean ± sd)" for x in test_sets] + \
        [f"{x} vs {baseline} (MAPSSWE)" for x in test_sets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for base, runs in groups.items():
        pair = next((b for b in sorted(bases, key=len, reverse=True) if base.endswith(b[len(baseline):])), None)
        kinds = sorted({name.split("_")[1] + "_" + name.split("_")[2] for exp in runs.values() for name, _ in decodes(exp)})
        for kind in kinds:
            rates, tests = [], []
            for x in test_sets:
                wers = [json.loads(p.read_text())["wer"]["rate"] for exp in runs.values()
                        if (p := exp / f"decode_{kind}_{x}" / "scores.json").is_file()]
                sd = f" ± {statistics.stdev(wers):.2f}" if len(wers) > 1 else ""
                rates.append(f"{statistics.mean(wers):.2f}{sd}" if wers else "-")
                if pair is None or pair == base:
                    tests.append("-")
                    continue
                better = worse = n = 0
                for seed, exp in runs.items():
                    other = groups[pair].get(seed)
                    a = exp / f"decode_{kind}_{x}" / "score_wer" / "result.sgml"
                    b = other / f"decode_{kind}_{x}" / "score_wer" / "result.sgml" if other else None
                    if not (a.is_file() and b is not None and b.is_file()):
                        continue
                    r = compare(a, b, "model", "baseline")["mapsswe"]
                    n += 1
                    better += r.better == "model"
                    worse += r.better == "baseline"
                tests.append(f"better in {better}/{n}, worse in {worse}/{n}" if n else "-")
            lines.append(f"| {base} | {kind.replace('_', ' ')} | {len(runs)} | " + " | ".join(rates + tests) + " |")
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
    s.add_argument("--baseline", default="scratch", help="model every other one is tested against (default scratch)")
    s.add_argument("--out", required=True, help="output markdown file")
    a = p.parse_args(argv)
    if a.cmd == "exp-table":
        Path(a.out).write_text(exp_table(Path(a.exp)) + "\n")
    else:
        bench = json.loads(Path(a.benchmark).read_text())
        table = summary(Path(a.asr_dir), bench, a.test_sets)
        seeds = seed_table(Path(a.asr_dir), a.test_sets, a.baseline)
        text = ("# Results\n\nWritten by stage 6 of the recipe (espnet_distill.bin.make_results). WER/CER in %, "
                "scored with sclite after the recipe's text normalisation; speed is the frontend's measured forward "
                "time on this machine.\n\n" + environments() + "\n\n" + table + "\n\n"
                "## Seeds and significance\n\nWER over the fine-tuning seeds (`--asr_seeds`): mean, and the sample "
                f"standard deviation where there are several. Against the `{a.baseline}` model fine-tuned on the same "
                "set with the same seed, sclite's `sc_stats` matched-pairs sentence-segment test (MAPSSWE) at "
                "p < 0.05: in how many seeds the model is significantly better or worse; a gap that is neither is "
                "not evidence of a difference.\n\n" + seeds + "\n")
        Path(a.out).write_text(text)
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
