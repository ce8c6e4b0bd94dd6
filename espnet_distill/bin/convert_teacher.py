"""Convert a HuBERT checkpoint (a released fairseq one, s3prl's hubert_local, torchaudio or ESPnet
weights) into our self-describing teacher format, keeping final_proj and the label embeddings.

    python -m espnet_distill.bin.convert_teacher hubert_base_ls960.pt exp/teacher/hubert_base.pt [--format auto]

fairseq is not imported: the file is read with torch.load(weights_only=True). A released
fairseq checkpoint whose ``cfg`` is an omegaconf object needs the ``cfg`` saved as a plain
dict first (the error message says so).
"""
from __future__ import annotations

import argparse
import logging
import sys

from espnet_distill.bin import setup_logging
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.teacher.checkpoints import FORMATS, convert_to_ours


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="convert_teacher", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="input checkpoint")
    p.add_argument("dst", help="output checkpoint (our format)")
    p.add_argument("--format", default="auto", choices=["auto", *sorted(FORMATS)], help="input format (default: detect)")
    a = p.parse_args(argv)
    try:
        model = convert_to_ours(a.src, a.dst, a.format)
    except CheckpointError as e:
        logging.error("%s", e)
        return 1
    c = model.cfg
    logging.info("%s -> %s: %d layers x %d, codebook %s", a.src, a.dst, c.num_layers, c.embed_dim,
                 f"{c.num_classes} x {c.final_dim}" if model.has_codebook else "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
