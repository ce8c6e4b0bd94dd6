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

import logging
import subprocess
import sys
from pathlib import Path

from espnet_distill.asr.experiment import Experiment
from espnet_distill.asr.model_card import model_card
from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("pack_model", __doc__)
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
