"""CTC decoding (greedy, or restricted to a grammar) of an ESPnet ASR model trained through our entry points.

    python -m espnet_distill.bin.asr_decode --asr-config exp/asr/x/config.yaml \\
        --asr-model exp/asr/x/valid.loss.ave.pth \\
        --data-dir data/dev data/test --out exp/asr/x/decode_ctc_greedy_{dev,test}/text [--bpe-model ...] \\
        [--batch-seconds 60] [--shard J --num-shards N] [--device cuda] [--quantize int8] [--grammar FILE]

``--grammar FILE`` restricts each hypothesis to one of the transcripts listed in FILE (the one of
highest CTC likelihood): closed-vocabulary tasks such as digits or commands.

Writes a Kaldi text file of hypotheses per data dir (an empty hypothesis is an empty line after
the id): several sets are decoded by one process that loads the model once (ESPnet's imports take
seconds per process). With ``--shard J --num-shards N`` it decodes the J-th of N contiguous parts
of each set (recipe stage 6 runs ``--inference_nj`` such jobs and merges their outputs).
``--quantize int8`` decodes with every linear layer dynamically quantized to int8 (PyTorch, CPU),
as a CPU deployment would.
Attention beam search runs through ``espnet_distill.bin.asr_inference`` (espnet2's own).
"""
from __future__ import annotations

import logging
import sys

from espnet_distill.asr.decode import check_token_list, decode_shard, read_grammar, write_hyps
from espnet_distill.asr.task import load_model
from espnet_distill.bin import new_parser, setup_logging
from espnet_distill.data.audio import AudioError
from espnet_distill.data.tables import DataDirError


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("asr_decode", __doc__)
    p.add_argument("--asr-config", required=True, help="the config.yaml ESPnet wrote next to the model")
    p.add_argument("--asr-model", required=True, help="model .pth (e.g. valid.loss.best.pth)")
    p.add_argument("--data-dir", required=True, nargs="+", help="Kaldi data dir(s) to decode (text is not needed)")
    p.add_argument("--out", required=True, nargs="+",
                   help="hypotheses, as a Kaldi text file: one per --data-dir, in the same order")
    p.add_argument("--bpe-model", default=None, help="sentencepiece model for BPE token lists")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio per batch")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--num-workers", type=int, default=-1,
                   help="processes reading the audio ahead of the model (-1: 2 on cuda, 0 on cpu)")
    p.add_argument("--shard", type=int, default=1, help="1-based part of each set to decode (the launcher's JOB)")
    p.add_argument("--num-shards", type=int, default=1, help="number of parts each set is split into")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: dynamic int8 quantization of the linear layers (CPU only; default none)")
    p.add_argument("--grammar", default=None, metavar="FILE",
                   help="closed vocabulary: a file of the allowed transcripts, one per line (normalised as the "
                        "training text); each utterance gets the one of highest CTC likelihood instead of the "
                        "greedy output")
    a = p.parse_args(argv)
    if a.quantize == "int8" and a.device != "cpu":
        p.error("--quantize int8 runs on the CPU only (PyTorch's dynamic quantization); use --device cpu")
    if not 1 <= a.shard <= a.num_shards:
        p.error(f"--shard {a.shard} is not in 1..{a.num_shards} (--num-shards)")
    if len(a.out) != len(a.data_dir):
        p.error(f"{len(a.data_dir)} --data-dir but {len(a.out)} --out: give one output file per data dir")
    grammar = None
    if a.grammar:
        try:
            grammar = read_grammar(a.grammar)
        except ValueError as e:
            logging.error("%s", e)
            return 1
    try:
        model, _ = load_model(a.asr_config, a.asr_model, a.device)
        check_token_list(model.token_list, a.bpe_model, a.asr_config)
    except ValueError as e:  # a model file that is not this model's, a token list and BPE model that differ
        logging.error("%s", e)
        return 1
    if a.quantize == "int8":
        from espnet_distill.student.export import quantize_int8

        model = quantize_int8(model)
    try:
        for data_dir, out in zip(a.data_dir, a.out):
            write_hyps(out, decode_shard(model, data_dir, a.shard, a.num_shards, grammar, a.bpe_model,
                                         a.batch_seconds, a.device, a.num_workers))
    except (DataDirError, AudioError) as e:
        logging.error("%s", e)
        return 1
    except ValueError as e:  # a grammar transcript the model's tokens cannot spell
        logging.error("%s: %s", a.grammar, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
