"""Pack a fine-tuned model with ESPnet's own packer, with a model card.

    python -m espnet_distill.bin.pack_model --exp exp/asr/dt_fbank_train_10min --out dt_fbank_10min.zip

Writes EXP/README.md (the model card: what the model is, its frontend and parameters, the data it
was fine-tuned on, its WER table and measured speed where stage 6 wrote them, the command that
made it) and packs config.yaml, the model file (the averaged one by default), the card, RESULTS.md
and the BPE model with ``espnet2.bin.pack asr``. ``transcribe --model OUT`` reads the archive, as
does ESPnet's ``Speech2Text.from_pretrained``-style unpacking (``espnet2.main_funcs.pack_funcs``).
Its export (``--onnx DIR``; default ``exp/asr/onnx/<model>`` of stage 6's ``--export_onnx true``, where it
exists) is packed beside it: ``transcribe --model OUT --runtime onnx`` runs that, without torch.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from espnet_distill.asr.experiment import Experiment
from espnet_distill.bin import setup_logging
from espnet_distill.config import ConfigError


def model_card(experiment: Experiment, model_file: Path) -> str:
    """The model card (markdown) of an ESPnet experiment of this toolkit."""
    exp, conf = experiment.path, experiment.config
    fe = conf.get("frontend_conf") or {}
    up = fe.get("upstream") or {}
    cfg = up.get("config") or {}
    entries = [x.split(",") if isinstance(x, str) else list(x) for x in conf.get("train_data_path_and_name_and_type", [])]
    train = [e[0] for e in entries if len(e) == 3 and e[1] == "speech"]
    lines = [f"# {exp.name}", "",
             "A speech recognizer fine-tuned with ESPnet from a model distilled by espnet_distill.", "",
             "| | |", "|---|---|",
             f"| frontend | {up.get('kind', '?')} ({cfg.get('frontend', 'cnn') if up.get('kind') == 'student' else 'HuBERT'}"
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
    lines += ["## Use", "", "```sh", f"python -m espnet_distill.bin.transcribe --model {exp.name}.zip audio.wav", "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="pack_model", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, help="ESPnet experiment folder (exp/asr/<model>)")
    p.add_argument("--model-file", default=None, help="model file to pack (default: the averaged one)")
    p.add_argument("--out", required=True, help="archive to write (.zip, or .tgz / .tar.gz)")
    p.add_argument("--onnx", default=None, help="exported folder to pack too (default: exp/asr/onnx/<model>; none)")
    a = p.parse_args(argv)
    exp = Path(a.exp)
    onnx = Path(a.onnx) if a.onnx not in (None, "none") else exp.parent / "onnx" / exp.name
    try:
        experiment = Experiment.read(exp)
        model_file = Path(a.model_file) if a.model_file else experiment.model_file()
        if a.onnx not in (None, "none") and not (onnx / "export.json").is_file():
            raise FileNotFoundError(f"--onnx {onnx}: no export.json: not a folder of bin/export --to sherpa-onnx")
    except (ConfigError, FileNotFoundError) as e:
        logging.error("%s", e)
        return 1
    (exp / "README.md").write_text(model_card(experiment, model_file))
    conf = experiment.config
    options = [exp / "README.md"] + [exp / "RESULTS.md"] * (exp / "RESULTS.md").is_file()
    if conf.get("bpemodel"):
        options.append(Path(conf["bpemodel"]))
    if a.onnx != "none" and (onnx / "export.json").is_file():
        options.append(onnx)
    cmd = [sys.executable, "-m", "espnet2.bin.pack", "asr", "--asr_train_config", str(exp / "config.yaml"),
           "--asr_model_file", str(model_file.resolve() if model_file.is_symlink() else model_file), "--outpath", a.out]
    for o in options:
        cmd += ["--option", str(o)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        logging.error("espnet2.bin.pack failed: %s", r.stderr.strip()[-800:])
        return 1
    logging.info("packed %s (%s, card %s) into %s", exp, model_file.name, exp / "README.md", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
