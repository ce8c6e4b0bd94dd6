"""CTC greedy decoding of an ESPnet ASR model trained through our entry points.

The command line is ``python -m espnet_distill.bin.asr_decode``; attention beam search runs
through ``espnet_distill.bin.asr_inference`` (espnet2's own).
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from espnet_distill.asr.prep import bpe_processor
from espnet_distill.data.dataset import AudioDataset, BucketBatches, collate


def tokens_to_text(tokens: list[str], bpe_model: str | None = None) -> str:
    if bpe_model:
        return bpe_processor(bpe_model).decode_pieces(tokens)
    return "".join(" " if t == "<space>" else t for t in tokens).strip()


def ctc_collapse(ids: list[int], blank: int = 0) -> list[int]:
    """Merge repeats, then drop blanks."""
    out, prev = [], None
    for i in ids:
        if i != prev and i != blank:
            out.append(i)
        prev = i
    return out


@torch.no_grad()
def greedy_decode(model, data_dir: str | Path, batch_seconds: float = 60.0, device: str = "cpu",
                  bpe_model: str | None = None, utts: list[str] | None = None) -> dict[str, str]:
    """{utt: hypothesis} for every utterance of ``data_dir`` (or of ``utts``)."""
    ds = AudioDataset(data_dir, max_seconds=None, min_samples=1, utts=utts)
    sampler = BucketBatches(ds.samples, batch_seconds, shuffle=False)
    token_list = model.token_list
    blank = token_list.index("<blank>") if "<blank>" in token_list else 0
    specials = {"<blank>", "<unk>", "<sos/eos>"}
    hyps = {}
    for idx in tqdm(list(sampler), desc=f"decode {Path(data_dir).name}", unit="batch"):
        b = collate([ds[i] for i in idx])
        enc, enc_lens = model.encode(b["wav"].to(device), b["lengths"].to(device))
        best = model.ctc.argmax(enc)
        for k, utt in enumerate(b["utt"]):
            ids = ctc_collapse(best[k, : int(enc_lens[k])].tolist(), blank)
            toks = [token_list[i] for i in ids if token_list[i] not in specials]
            hyps[utt] = tokens_to_text(toks, bpe_model)
    return hyps
