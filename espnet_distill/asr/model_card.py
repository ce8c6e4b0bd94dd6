"""The model card (README.md) that ``bin/pack_model`` writes into an experiment and packs with it:
what the model is, its frontend and parameters, the data it was fine-tuned on, its WER table and
measured speed where stage 6 wrote them, and the command that made it."""
from __future__ import annotations

import json
from pathlib import Path

from espnet_distill.asr.experiment import Experiment


def model_card(experiment: Experiment, model_file: Path) -> str:
    """The model card (markdown) of an ESPnet experiment of this toolkit."""
    exp, conf = experiment.path, experiment.config
    fe = conf.get("frontend_conf") or {}
    up = fe.get("upstream") or {}
    cfg = up.get("config") or {}
    entries = [x.split(",") if isinstance(x, str) else list(x)
               for x in conf.get("train_data_path_and_name_and_type", [])]
    train = [e[0] for e in entries if len(e) == 3 and e[1] == "speech"]
    lines = [f"# {exp.name}", "",
             "A speech recognizer fine-tuned with ESPnet from a model distilled by espnet_distill.", "",
             "| | |", "|---|---|",
             f"| frontend | {up.get('kind', '?')} "
             f"({cfg.get('frontend', 'cnn') if up.get('kind') == 'student' else 'HuBERT'}"
             f", {cfg.get('num_layers', '?')} layers x {cfg.get('dim', cfg.get('embed_dim', '?'))}) |",
             f"| started from | `{fe.get('checkpoint', '?')}` |",
             f"| fine-tuned on | {', '.join(f'`{Path(t).parent}`' for t in train) or '?'} |",
             f"| tokens | {conf.get('token_type', '?')}, {len(conf.get('token_list') or [])} |",
             f"| decoder | {conf.get('decoder') or 'none (CTC only)'} |",
             f"| model file | `{model_file.name}` |", ""]
    bench = exp.parent / "benchmark.json"
    if bench.is_file():
        ckpt = str(Path(fe.get("checkpoint", "")).resolve())
        for r in json.loads(bench.read_text()):
            if r.get("checkpoint") and not r.get("int8_of") and str(Path(r["checkpoint"]).resolve()) == ckpt:
                params = (r["params"]["frontend"] + r["params"]["encoder"]) / 1e6
                lines += [f"Frontend: {params:.2f} M parameters, {1e3 * r['time']['1']['total']:.1f} ms per second "
                          "of audio at batch 1 (measured by stage 6 on the machine that made it).", ""]
    if (exp / "RESULTS.md").is_file():
        lines += ["## Results", "", (exp / "RESULTS.md").read_text().strip(), ""]
    repro = exp.parent / "reproduce.sh"
    if repro.is_file():
        lines += ["## How it was made", "", "```sh", repro.read_text().strip(), "```", ""]
    use = f"python -m espnet_distill.bin.transcribe --model {exp.name}.zip audio.wav"
    lines += ["## Use", "", "```sh", use, "```", ""]
    return "\n".join(lines)
