"""The tables of RESULTS.md and CLAIMS.md, from scored decodings (recipe stage 6, local/claims.sh).

- :func:`exp_table`: ESPnet-style |dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err| tables of one experiment.
- :func:`summary`: one row per ASR experiment and decoding, with the frontend's size and speed.
- :func:`seed_table`: WER mean and spread over fine-tuning seeds, sclite's MAPSSWE against a baseline.
- :func:`int8_table`: int8 decoding against the same model in float.
- :func:`superb_table`: each frontend fine-tuned whole beside its SUPERB-protocol probe.
- :func:`lm_table`: each model decoded with and without the LM of ``--use_lm``.
- :func:`claims_table`: the paper's claims (:data:`CLAIMS`), each two models compared over seeds.

``espnet_distill.bin.make_results`` is the command line.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from espnet_distill.asr.experiment import PROTOCOL_SUFFIX, Experiment
from espnet_distill.asr.score import Counts, results_row

HEADER = "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|\n|---|---|---|---|---|---|---|---|---|"


# How a decoding kind is named in the tables (others: their words); each LM kind beside the same model's
# decoding without the LM: attention beam search, or CTC greedy for CTC-only models
KIND_LABELS = {"ctc_beam_lm": "ctc beam + LM", "att_beam_lm": "att beam + LM"}
LM_KINDS = {"ctc_beam_lm": "ctc_greedy", "att_beam_lm": "att_beam"}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " "))


def decodes(exp: Path) -> list[tuple[str, dict]]:
    return [(p.parent.name, json.loads(p.read_text())) for p in sorted(exp.glob("decode_*/scores.json"))]


def decode_kinds(exp: Path, test_sets: list[str]) -> list[str]:
    """How an experiment was decoded: ``decode_<kind>_<set>`` folders -> sorted kinds
    (ctc_greedy, ctc_greedy_int8, att_beam); set names may hold underscores."""
    kinds = set()
    for name, _ in decodes(exp):
        for x in test_sets:
            if name.endswith(f"_{x}"):
                kinds.add(name[len("decode_"): -len(x) - 1])
    return sorted(kinds)


def exp_table(exp: Path) -> str:
    lines = [f"# {exp.name}", ""]
    for metric in ("wer", "cer"):
        lines += [f"## {metric.upper()}", "", HEADER]
        for name, s in decodes(exp):
            lines.append(results_row(name, Counts(**s[metric]["result"])))
        lines.append("")
    return "\n".join(lines)


def summary(asr_dir: Path, bench: list[dict], test_sets: list[str]) -> str:
    by_ckpt = {(str(Path(r["checkpoint"]).resolve()), bool(r.get("int8_of"))): r for r in bench if r.get("checkpoint")}
    cols = [f"{x} {m}" for x in test_sets for m in ("WER", "CER")]
    lines = ["| model | decoding | params (M, no heads) | frontend ms per audio-s (batch 1) | "
             + " | ".join(cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for experiment in Experiment.all_in(asr_dir):
        exp = experiment.path
        ckpt = str(Path(experiment.student_checkpoint or "").resolve())
        for kind in decode_kinds(exp, test_sets):
            r = by_ckpt.get((ckpt, kind.endswith("_int8")))  # the frontend's int8 row for int8 decoding
            params = f"{(r['params']['frontend'] + r['params']['encoder']) / 1e6:.2f}" if r else "-"
            speed = f"{1e3 * r['time']['1']['total']:.1f}" if r else "-"
            cells = []
            for x in test_sets:
                p = exp / f"decode_{kind}_{x}" / "scores.json"
                s = json.loads(p.read_text()) if p.is_file() else None
                cells += [f"{s['wer']['rate']:.2f}" if s else "-", f"{s['cer']['rate']:.2f}" if s else "-"]
            lines.append(f"| {exp.name} | {kind_label(kind)} | {params} | {speed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_groups(asr_dir: Path) -> dict[str, dict[int | None, Path]]:
    """Experiments grouped by model: ``<frontend>_<set>`` or ``<frontend>_<set>_seed<N>`` -> {seed: dir}."""
    import re

    groups: dict[str, dict[int | None, Path]] = {}
    for exp in (e.path for e in Experiment.all_in(asr_dir)):
        m = re.match(r"^(.*)_seed(\d+)$", exp.name)
        base, seed = (m.group(1), int(m.group(2))) if m else (exp.name, None)
        groups.setdefault(base, {})[seed] = exp
    return groups


def seed_wers(runs: dict[int | None, Path], kind: str, x: str) -> dict[int | None, float]:
    """{seed: WER} of one model's runs decoded as ``kind`` on set ``x`` (runs not decoded are left out)."""
    return {seed: json.loads(p.read_text())["wer"]["rate"] for seed, exp in runs.items()
            if (p := exp / f"decode_{kind}_{x}" / "scores.json").is_file()}


def mapsswe_counts(runs: dict[int | None, Path], other: dict[int | None, Path], kind: str,
                   x: str) -> tuple[int, int, int]:
    """sc_stats's MAPSSWE test of a model against another, seed by seed (the same seed of each):
    (seeds where the model is significantly better, significantly worse, seeds tested), p < 0.05."""
    from espnet_distill.asr.significance import compare

    better = worse = n = 0
    for seed, exp in runs.items():
        a = exp / f"decode_{kind}_{x}" / "score_wer" / "result.sgml"
        b = other[seed] / f"decode_{kind}_{x}" / "score_wer" / "result.sgml" if seed in other else None
        if not (a.is_file() and b is not None and b.is_file()):
            continue
        r = compare(a, b, "model", "baseline")["mapsswe"]
        n += 1
        better += r.better == "model"
        worse += r.better == "baseline"
    return better, worse, n


def mean_sd(values: list[float]) -> str:
    """``mean ± sd`` (sample sd) of seed results; the mean alone for one seed."""
    import statistics

    if not values:
        return "-"
    sd = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{sd}"


def seed_table(asr_dir: Path, test_sets: list[str], baseline: str = "scratch") -> str:
    """Per model: WER mean and spread over the fine-tuning seeds on each test set, and sclite's
    sc_stats MAPSSWE test against the ``baseline`` model fine-tuned on the same set with the same
    seed: how many seeds find the model significantly better / worse (p < 0.05)."""
    groups = seed_groups(asr_dir)
    bases = {b for b in groups if b.startswith(f"{baseline}_")}
    header = ["model", "decoding", "seeds"] + [f"{x} WER (mean ± sd)" for x in test_sets] + \
        [f"{x} vs {baseline} (MAPSSWE)" for x in test_sets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for base, runs in groups.items():
        pair = next((b for b in sorted(bases, key=len, reverse=True) if base.endswith(b[len(baseline):])), None)
        kinds = sorted({k for exp in runs.values() for k in decode_kinds(exp, test_sets)})
        for kind in kinds:
            rates, tests = [], []
            for x in test_sets:
                rates.append(mean_sd(list(seed_wers(runs, kind, x).values())))
                if pair is None or pair == base:
                    tests.append("-")
                    continue
                better, worse, n = mapsswe_counts(runs, groups[pair], kind, x)
                tests.append(f"better in {better}/{n}, worse in {worse}/{n}" if n else "-")
            lines.append(f"| {base} | {kind_label(kind)} | {len(runs)} | " + " | ".join(rates + tests) + " |")
    return "\n".join(lines)


def wer_change(runs: dict[int | None, Path], before: str, after: str, x: str) -> list[str]:
    """Cells ``before mean | after mean | change`` of one model's WER on set ``x`` decoded as ``before``
    and as ``after``, over the seeds that have both; dashes when none has."""
    import statistics

    a, b = seed_wers(runs, before, x), seed_wers(runs, after, x)
    pairs = [(a[seed], b[seed]) for seed in b if seed in a]
    if not pairs:
        return ["-", "-", "-"]
    mean_a, mean_b = statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs)
    return [f"{mean_a:.2f}", f"{mean_b:.2f}", f"{mean_b - mean_a:+.2f}"]


def int8_table(asr_dir: Path, test_sets: list[str]) -> str:
    """Per model (mean over its seeds): CTC greedy WER with float and with int8 linear layers, and
    the change; empty when nothing was decoded in int8."""
    lines = []
    for base, runs in seed_groups(asr_dir).items():
        cells = [c for x in test_sets for c in wer_change(runs, "ctc_greedy", "ctc_greedy_int8", x)]
        if any(c != "-" for c in cells):
            lines.append(f"| {base} | {len(runs)} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    header = ["model", "seeds"] + [f"{x} WER {k}" for x in test_sets for k in ("float", "int8", "change")]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + lines)


def lm_table(asr_dir: Path, test_sets: list[str]) -> str:
    """Per model decoded with the LM (:data:`LM_KINDS`): WER (mean over its seeds) without and with the
    LM, and the change in points; "" when nothing was decoded with an LM."""
    lines = []
    for base, runs in seed_groups(asr_dir).items():
        for kind, without in LM_KINDS.items():
            cells = [c for x in test_sets for c in wer_change(runs, without, kind, x)]
            if any(c != "-" for c in cells):
                lines.append(f"| {base} | {len(runs)} | {kind_label(without)} | {kind_label(kind)} | "
                             + " | ".join(cells) + " |")
    if not lines:
        return ""
    header = ["model", "seeds", "without LM", "with LM"] + \
        [f"{x} WER {k}" for x in test_sets for k in ("without", "with", "change")]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + lines)


def lm_summary(lm_dir: Path) -> str:
    """One line on the LM of ``lm_dir`` (stage 6, ``--use_lm``): its config, text and perplexity."""
    import yaml

    config = yaml.safe_load((lm_dir / "config.yaml").read_text()) if (lm_dir / "config.yaml").is_file() else {}
    text = lm_dir / "data" / "train.text"
    n = sum(1 for _ in text.open()) if text.is_file() else 0
    ppl = [f"{p.parent.name.removeprefix('ppl_')} {float(p.read_text()):.2f}" for p in sorted(lm_dir.glob("ppl_*/ppl"))]
    conf = ", ".join(f"{k} {v}" for k, v in (config.get("lm_conf") or {}).items())
    return (f"LM: `{lm_dir}`, ESPnet's `{config.get('lm', '?')}` ({conf}), {config.get('token_type', '?')} tokens, "
            f"trained on {n} sentences; perplexity per token: {', '.join(ppl) or 'not measured'}.")


ONNX_KINDS = ("onnx_fp32", "onnx_int8")  # stage 6 with --export_onnx: decode_<kind>_<set>/ of the exported graphs


def superb_table(asr_dir: Path, test_sets: list[str], kind: str = "ctc_greedy") -> str:
    """Per frontend and fine-tuning set with a SUPERB-protocol model (``<model>_superb``): WER (mean
    over seeds) fine-tuned whole and under SUPERB's protocol, decoded as ``kind``; "" when there is none."""
    suffix = PROTOCOL_SUFFIX["superb"]
    groups = seed_groups(asr_dir)
    rows = []
    for base, runs in groups.items():
        if not base.endswith(suffix):
            continue
        model = base[: -len(suffix)]
        cells = []
        for x in test_sets:
            cells.append(mean_sd(list(seed_wers(groups.get(model, {}), kind, x).values())))
            cells.append(mean_sd(list(seed_wers(runs, kind, x).values())))
        rows.append(f"| {model} | {len(runs)} | " + " | ".join(cells) + " |")
    if not rows:
        return ""
    header = ["model", "seeds"] + [f"{x} WER {k}" for x in test_sets for k in ("fine-tuned", "SUPERB")]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + rows)


def same_hyps(a: Path, b: Path) -> float | None:
    """Share (%) of the utterances of Kaldi text ``b`` whose hypothesis equals ``a``'s, or None."""
    if not (a.is_file() and b.is_file()):
        return None
    ref = dict((ln.split(" ", 1) + [""])[:2] for ln in a.read_text().splitlines() if ln)
    got = dict((ln.split(" ", 1) + [""])[:2] for ln in b.read_text().splitlines() if ln)
    return 100.0 * sum(ref.get(u) == t for u, t in got.items()) / len(got) if got else None


def onnx_table(asr_dir: Path, test_sets: list[str]) -> str:
    """Per exported model and graph: WER/CER per set, hypotheses equal to PyTorch's CTC greedy ones,
    real-time factor on one thread, model file size and peak memory of the decoding process (from
    each decode folder's stats.json); empty when nothing was exported."""
    lines = []
    for experiment in Experiment.all_in(asr_dir):
        exp = experiment.path
        for kind in ONNX_KINDS:
            dirs = [exp / f"decode_{kind}_{x}" for x in test_sets]
            if not any((d / "stats.json").is_file() for d in dirs):
                continue
            cells = []
            stats = [json.loads((d / "stats.json").read_text()) for d in dirs if (d / "stats.json").is_file()]
            for x, d in zip(test_sets, dirs):
                sc = json.loads((d / "scores.json").read_text()) if (d / "scores.json").is_file() else None
                same = same_hyps(exp / f"decode_ctc_greedy_{x}" / "text", d / "text")
                cells += [f"{sc['wer']['rate']:.2f}" if sc else "-", f"{sc['cer']['rate']:.2f}" if sc else "-",
                          f"{same:.1f}" if same is not None else "-"]
            audio, decode = sum(s["audio_seconds"] for s in stats), sum(s["decode_seconds"] for s in stats)
            rtf = f"{decode / audio:.4f}" if audio else "-"
            lines.append(f"| {exp.name} | {kind.removeprefix('onnx_')} | {stats[0]['runtime']} | "
                         + " | ".join(cells) + f" | {rtf} | {stats[0]['model_bytes'] / 1e6:.2f} | "
                         f"{max(s['peak_rss_mb'] for s in stats):.0f} |")
    if not lines:
        return ""
    header = (["model", "graph", "runtime"] + [f"{x} {k}" for x in test_sets for k in ("WER", "CER", "same as torch %")]
              + ["RTF (1 thread)", "MB", "peak RSS MB"])
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + lines)


@dataclass(frozen=True)
class Comparison:
    """One row of the claims table: ``model`` against ``reference``, fine-tuned alike."""
    claim: str
    model: str  # frontend name (exp/asr/<model>_<set>_seed<N>)
    reference: str
    what: str
    expect: str = "better"  # better: the claim says the model wins; no worse: it does not lose


# The paper's four claims and one beyond it, as run by egs2/synth_en/distill1/local/claims.sh
CLAIMS = [
    Comparison("C1", "dt_cnn", "dt_cnn_alpha0", "L_reg + 0.4 L_disc (type 2) vs L_reg only"),
    Comparison("C1", "dt_cnn_type1", "dt_cnn_alpha0", "L_disc type 1 (cosine to label embeddings) vs L_reg only"),
    Comparison("C1", "dt_cnn_type3", "dt_cnn_alpha0", "L_disc type 3 (cross-entropy on labels) vs L_reg only"),
    Comparison("C2", "dt_fbank", "dt_cnn", "Fbank front-end vs the waveform CNN (same encoder)", "no worse"),
    Comparison("C3", "dt_cnn", "sw_cnn", "deep & thin (6 x 160) vs shallow & wide (2 x 256), same parameters"),
    Comparison("C4", "dt_fbank", "scratch", "distilled vs the same student from random weights"),
    Comparison("C4", "teacher", "scratch", "the teacher as frontend vs from scratch (is the scale large enough?)"),
    Comparison("C5", "pruned_dt", "dt_cnn", "beyond the paper: the teacher pruned to D&T's size (DPHuBERT's method) "
               "vs D&T, equal parameters"),
]


def verdict(expect: str, better: int, worse: int, n: int) -> str:
    """What the seeds say about a claim: MAPSSWE (p < 0.05) per seed, a majority deciding."""
    if n == 0:
        return "not measured"
    if expect == "better":
        if better * 2 > n and worse == 0:
            return "reproduced"
        return "contradicted" if worse * 2 > n else "not resolved at this scale"
    return "reproduced" if worse * 2 <= n else "contradicted"


def claims_table(asr_dir: Path, bench: list[dict], finetune_set: str, test_sets: list[str],
                 comparisons: list[Comparison] = CLAIMS, kind: str = "ctc_greedy") -> str:
    """The claims table: per comparison and test set, both models' WER over the seeds (mean ± sd),
    the gap in points and in pooled seed standard deviations, sclite's MAPSSWE per seed and a verdict
    (on the last test set); then parameters and measured speed of the frontends."""
    import math
    import statistics

    groups = seed_groups(asr_dir)
    header = ["claim", "model vs reference", "set", "model WER", "reference WER", "gap (points)", "gap / sd",
              "MAPSSWE (p < 0.05)", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in comparisons:
        runs, ref = groups.get(f"{c.model}_{finetune_set}"), groups.get(f"{c.reference}_{finetune_set}")
        if not runs or not ref:
            lines.append(f"| {c.claim} | {c.what}: `{c.model}` vs `{c.reference}` | - | not run | | | | | |")
            continue
        for i, x in enumerate(test_sets):
            a, b = seed_wers(runs, kind, x), seed_wers(ref, kind, x)
            gap = statistics.mean(a.values()) - statistics.mean(b.values()) if a and b else float("nan")
            sd = math.sqrt((statistics.variance(a.values()) + statistics.variance(b.values())) / 2) \
                if len(a) > 1 and len(b) > 1 else float("nan")
            ratio = gap / sd if sd > 0 else float("nan")
            better, worse, n = mapsswe_counts(runs, ref, kind, x)
            first = f"{c.claim} | {c.what}: `{c.model}` vs `{c.reference}`" if i == 0 else " | "
            last = verdict(c.expect, better, worse, n) if i == len(test_sets) - 1 else ""
            lines.append(f"| {first} | {x} | {mean_sd(list(a.values()))} | {mean_sd(list(b.values()))} | {gap:+.2f} | "
                         f"{ratio:+.1f} | better in {better}/{n}, worse in {worse}/{n} | {last} |"
                         .replace("+nan", "-").replace("nan", "-"))
    speed = ["| frontend | params (M, no heads) | ms per audio-s (batch 1, this CPU) |", "|---|---|---|"]
    for r in bench:
        if r.get("checkpoint") and not r.get("int8_of"):
            name = Path(r["checkpoint"]).parent.name
            speed.append(f"| {name} | {(r['params']['frontend'] + r['params']['encoder']) / 1e6:.2f} | "
                         f"{1e3 * r['time']['1']['total']:.1f} |")
    return "\n".join(lines) + "\n\n" + "\n".join(speed)


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
    changed = commit != "unknown" and git("status", "--porcelain", "--untracked-files=no")
    dirty = " (with uncommitted changes)" if changed else ""
    return "\n".join([
        "## Environments",
        f"- date: `{datetime.datetime.now().astimezone().strftime('%a %b %d %H:%M:%S %Z %Y')}`",
        f"- python version: `{platform.python_version()}`",
        f"- espnet version: `espnet {espnet.__version__}`",
        f"- pytorch version: `pytorch {torch.__version__}`",
        f"- espnet_distill commit: `{commit}`{dirty}",
        f"- machine: `{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}`",
    ])


def claims_document(table: str, finetune_set: str, elapsed: int = 0, command: str = "") -> str:
    """CLAIMS.md: how the claims were measured, the environment, and ``table`` (:func:`claims_table`)."""
    took = f"{elapsed // 3600} h {elapsed % 3600 // 60} min" if elapsed else "not recorded"
    return ("# The paper's claims, measured on the embedded corpus\n\n"
            f"Written by `{command or 'make_results claims'}` (espnet_distill.bin.make_results claims); "
            f"the run took {took} on this machine. Every model is fine-tuned on `{finetune_set}` once per "
            "seed and decoded with CTC greedy search; WER in %, mean ± sample standard deviation over the "
            "seeds. Gap: model minus reference (negative: the model is better); gap / sd: the gap in pooled "
            "seed standard deviations. MAPSSWE: sclite's `sc_stats` matched-pairs test of the two models "
            "fine-tuned with the same seed, in how many seeds the model is significantly better or worse. "
            "Verdict (on the last set): reproduced when the model is significantly better in most seeds and "
            "worse in none (for C2, the Fbank front-end's claim of no WER cost: not significantly worse in "
            "most seeds); contradicted when it is significantly worse in most seeds; otherwise not "
            "resolved at this scale.\n\n" + environments() + "\n\n" + table + "\n")


def results_document(asr_dir: Path, table: str, test_sets: list[str], baseline: str = "scratch",
                     lm_dir: Path | None = None) -> str:
    """RESULTS.md: ``table`` (:func:`summary`), the seed and significance table, the one-seed note,
    and the sections of the SUPERB probes, LM decoding (the LM of ``lm_dir``), exported models and
    int8 decoding where there are any."""
    seeds = seed_table(asr_dir, test_sets, baseline)
    text = ("# Results\n\nWritten by stage 6 of the recipe (espnet_distill.bin.make_results). WER/CER in %, "
            "scored with sclite after the recipe's text normalisation; speed is the frontend's measured forward "
            "time on this machine.\n\n" + environments() + "\n\n" + table + "\n\n"
            "## Seeds and significance\n\nWER over the fine-tuning seeds (`--asr_seeds`): mean, and the sample "
            f"standard deviation where there are several. Against the `{baseline}` model fine-tuned on the same "
            "set with the same seed, sclite's `sc_stats` matched-pairs sentence-segment test (MAPSSWE) at "
            "p < 0.05: in how many seeds the model is significantly better or worse; a gap that is neither is "
            "not evidence of a difference.\n\n" + seeds + "\n")
    if all(len(runs) == 1 for runs in seed_groups(asr_dir).values()):
        text += ("\nOne fine-tuning seed per model: the spread over seeds is not measured in this table, so a "
                 "gap between two models may be the seed's alone. Run stage 5-6 with `--asr_seeds \"0 1 2\"` "
                 "(or, for the embedded corpus, `local/claims.sh`, which writes CLAIMS.md) to know which gaps "
                 "are real.\n")
    superb = superb_table(asr_dir, test_sets)
    if superb:
        text += ("\n## SUPERB ASR\n\nEach frontend fine-tuned whole (the tables above) beside SUPERB's ASR "
                 "protocol (`--asr_protocols superb`, `conf/asr/superb.yaml`: the frontend frozen, a learned "
                 "weighted sum of all its hidden states, a 2-layer BLSTM and character CTC), both decoded with "
                 "CTC greedy search and no LM: the protocol of the SUPERB numbers published for other "
                 "compressed HuBERTs. WER in %, mean (± sd) over the seeds.\n\n" + superb + "\n")
    lm = lm_table(asr_dir, test_sets)
    if lm:
        text += ("\n## LM decoding\n\nShallow fusion of the recipe's LM (`--use_lm true`, weight "
                 "`--lm_weight`): CTC prefix beam search with the LM for CTC-only models (`ctc beam + LM`), "
                 "attention + CTC + LM for models with a decoder (`att beam + LM`), each beside the same model "
                 "decoded without the LM (CTC greedy; attention beam search). WER in %, means over the seeds, "
                 "the change in points; the significance of each against the baseline is in the seeds table "
                 "above.\n\n" + (lm_summary(lm_dir) + "\n\n" if lm_dir is not None else "") + lm + "\n")
    onnx = onnx_table(asr_dir, test_sets)
    if onnx:
        text += ("\n## Exported models (sherpa-onnx / ONNX Runtime)\n\nEach model exported by "
                 "`bin/export --to sherpa-onnx` (`--export_onnx true`) and decoded by the folder's own "
                 "`transcribe.py` (fp32: model.onnx; int8: model.int8.onnx), one thread, one utterance at a time: "
                 "WER/CER, the share of hypotheses equal to PyTorch's CTC greedy ones, the real-time factor "
                 "(decoding seconds per audio second, audio loading left out), the graph's size and the peak "
                 "resident memory of the decoding process.\n\n" + onnx + "\n")
    int8 = int8_table(asr_dir, test_sets)
    if int8:
        text += ("\n## int8 inference\n\nCTC greedy decoding with every linear layer dynamically quantized to "
                 "int8 (PyTorch, CPU; `bin.asr_decode --quantize int8`), against the same model in float: WER "
                 "means over the seeds and the change in points.\n\n" + int8 + "\n")
    return text
