"""CTC decoding of an ESPnet ASR model trained through our entry points.

- :func:`greedy_decode`: best token per frame, repeats merged, blanks dropped.
- :func:`grammar_decode`: closed vocabulary (digits, commands): of the transcripts a grammar
  allows, the one of highest CTC likelihood (:func:`ctc_best_of`), as a grammar-constrained
  decoder (Kaldi's G.fst of a word list) would choose.

The command line is ``python -m espnet_distill.bin.asr_decode``; attention beam search runs
through ``espnet_distill.bin.asr_inference`` (espnet2's own).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from espnet_distill.asr.prep import bpe_processor, tokenize
from espnet_distill.data.dataset import AudioDataset, BucketBatches, collate


def tokens_to_text(tokens: list[str], bpe_model: str | None = None) -> str:
    if bpe_model:
        return bpe_processor(bpe_model).decode_pieces(tokens)
    return "".join(" " if t == "<space>" else t for t in tokens).strip()


SPECIAL_TOKENS = ("<blank>", "<unk>", "<sos/eos>")


def check_token_list(token_list: list[str], bpe_model: str | None, where: str) -> None:
    """Raise ValueError unless ``bpe_model`` and the model's tokens are one pair: with a BPE model,
    every token (but the special ones) must be one of its pieces; without one, the tokens must be
    characters (a model trained on BPE tokens needs its sentencepiece model to be read)."""
    tokens = [t for t in token_list if t not in SPECIAL_TOKENS]
    if bpe_model is None:
        pieces = [t for t in tokens if len(t) > 1 and t != "<space>"]
        if pieces:
            raise ValueError(f"{where}: its tokens are BPE pieces (e.g. {pieces[0]!r}), not characters: give its "
                             "--bpe-model (the recipe's dump/token_list/bpe/bpe.model)")
        return
    if not Path(bpe_model).is_file():
        raise ValueError(f"--bpe-model {bpe_model}: file not found")
    try:
        sp = bpe_processor(bpe_model)
    except Exception as e:  # sentencepiece's own errors are C++ messages
        raise ValueError(f"--bpe-model {bpe_model}: not a sentencepiece model ({str(e)[:120]})") from None
    vocab = {sp.id_to_piece(i) for i in range(sp.get_piece_size())}
    unknown = [t for t in tokens if t not in vocab]
    if unknown:
        raise ValueError(f"{where}: its token list does not match --bpe-model {bpe_model}: {len(unknown)} of its "
                         f"{len(tokens)} tokens are not pieces of it (first: {unknown[0]!r})")


def ctc_collapse(ids: list[int], blank: int = 0) -> list[int]:
    """Merge repeats, then drop blanks."""
    out, prev = [], None
    for i in ids:
        if i != prev and i != blank:
            out.append(i)
        prev = i
    return out


def encoded_batches(model, data_dir: str | Path, batch_seconds: float, device: str, utts: list[str] | None,
                    what: str = "decode", num_workers: int = -1
                    ) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """``(utterance ids, encoder output (B, T, D), valid frames (B,))`` for every length-bucketed batch
    of ``data_dir`` (or of ``utts``): the input every CTC decoder here starts from. The audio is read
    by ``num_workers`` DataLoader workers ahead of the model (-1: 2 on CUDA, where the model is quicker
    than one reader; 0 on the CPU, whose cores run the decoding jobs)."""
    ds = AudioDataset(data_dir, max_seconds=None, min_samples=1, utts=utts)
    sampler = BucketBatches(ds.samples, batch_seconds, shuffle=False)
    cuda = str(device).startswith("cuda")
    workers = num_workers if num_workers >= 0 else (2 if cuda else 0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                                         pin_memory=cuda)
    for b in tqdm(loader, desc=f"{what} {Path(data_dir).name}", unit="batch"):
        order = torch.argsort(b["lengths"], descending=True, stable=True)  # longest first: ESPnet's RNN
        # encoder packs the batch with pack_padded_sequence, which wants it so
        enc, enc_lens = model.encode(b["wav"][order].to(device), b["lengths"][order].to(device))
        yield [b["utt"][i] for i in order.tolist()], enc, enc_lens


@torch.no_grad()
def greedy_decode(model, data_dir: str | Path, batch_seconds: float = 60.0, device: str = "cpu",
                  bpe_model: str | None = None, utts: list[str] | None = None, num_workers: int = -1
                  ) -> dict[str, str]:
    """{utt: hypothesis} for every utterance of ``data_dir`` (or of ``utts``); ``num_workers``: audio
    readers (:func:`encoded_batches`)."""
    hyps = {}
    for batch_utts, enc, enc_lens in encoded_batches(model, data_dir, batch_seconds, device, utts,
                                                     num_workers=num_workers):
        hyps.update(zip(batch_utts, ctc_greedy_texts(model, enc, enc_lens, bpe_model)))
    return hyps


def ctc_greedy_texts(model, enc: torch.Tensor, enc_lens: torch.Tensor, bpe_model: str | None = None) -> list[str]:
    """The CTC greedy text of each utterance of a batch: the best token per frame (enc (B, T, D),
    enc_lens (B,) valid frames), repeats merged, blanks and special tokens dropped, tokens joined
    (characters, or BPE pieces through ``bpe_model``). The one CTC-to-text rule of the toolkit."""
    token_list = model.token_list
    blank = token_list.index("<blank>") if "<blank>" in token_list else 0
    best = model.ctc.argmax(enc)
    out = []
    for k in range(best.shape[0]):
        ids = ctc_collapse(best[k, : int(enc_lens[k])].tolist(), blank)
        out.append(tokens_to_text([token_list[i] for i in ids if token_list[i] not in SPECIAL_TOKENS], bpe_model))
    return out


def ctc_best_of(log_probs: torch.Tensor, lengths: torch.Tensor, candidates: list[list[int]], blank: int = 0
                ) -> torch.Tensor:
    """The candidate token sequence of highest CTC likelihood for each utterance.

    log_probs: (B, T, V) log-softmax outputs; lengths: (B,) valid frames; candidates: C token-id
    sequences (each non-empty). Returns (B,) indices into ``candidates``; an utterance too short
    for every candidate (all likelihoods zero) gets the first.
    """
    b, c = log_probs.shape[0], len(candidates)
    lp = log_probs.float().transpose(0, 1).repeat_interleave(c, dim=1)  # (T, B * C, V): utterance-major
    targets = torch.tensor([t for cand in candidates for t in cand] * b, dtype=torch.long)
    target_lengths = torch.tensor([len(cand) for cand in candidates] * b, dtype=torch.long)
    nll = F.ctc_loss(lp, targets, lengths.cpu().repeat_interleave(c), target_lengths, blank=blank,
                     reduction="none", zero_infinity=False)  # (B * C,)
    return nll.view(b, c).argmin(dim=1)


def read_grammar(path: str | Path) -> list[str]:
    """The allowed transcripts of a grammar file: one per line, blank lines skipped, each once."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the grammar ({e})") from None
    out = list(dict.fromkeys(" ".join(line.split()) for line in lines if line.strip()))
    if not out:
        raise ValueError(f"{path}: the grammar has no transcript")
    return out


def grammar_candidates(token_list: list[str], grammar: list[str], token_type: str = "char",
                       bpe_model: str | None = None) -> list[list[int]]:
    """The token ids of each transcript of ``grammar``, tokenised as in training; a token missing
    from ``token_list`` is a ValueError naming the transcript."""
    index = {t: i for i, t in enumerate(token_list)}
    candidates = []
    for text in grammar:
        toks = tokenize(text, token_type, bpe_model)
        missing = [t for t in toks if t not in index]
        if missing or not toks:
            raise ValueError(f"grammar transcript {text!r}: tokens {missing or '(none)'} "
                             "are not in the model's token list")
        candidates.append([index[t] for t in toks])
    return candidates


@torch.no_grad()
def grammar_decode(model, data_dir: str | Path, grammar: list[str], token_type: str = "char",
                   batch_seconds: float = 60.0, device: str = "cpu", bpe_model: str | None = None,
                   utts: list[str] | None = None, num_workers: int = -1) -> dict[str, str]:
    """{utt: the transcript of ``grammar`` of highest CTC likelihood} for every utterance of
    ``data_dir`` (or of ``utts``). ``grammar``: the allowed transcripts, tokenised as in training;
    a token missing from the model's list is a ValueError naming the transcript."""
    candidates = grammar_candidates(model.token_list, grammar, token_type, bpe_model)
    blank = model.token_list.index("<blank>") if "<blank>" in model.token_list else 0
    hyps = {}
    for batch_utts, enc, enc_lens in encoded_batches(model, data_dir, batch_seconds, device, utts, "grammar decode",
                                                     num_workers):
        best = ctc_best_of(model.ctc.log_softmax(enc), enc_lens, candidates, blank)
        for k, utt in enumerate(batch_utts):
            hyps[utt] = grammar[int(best[k])]
    return hyps


def decode_shard(model, data_dir: str | Path, shard: int = 1, num_shards: int = 1, grammar: list[str] | None = None,
                 bpe_model: str | None = None, batch_seconds: float = 60.0, device: str = "cpu",
                 num_workers: int = -1) -> dict[str, str]:
    """{utt: hypothesis} of the ``shard``-th of ``num_shards`` contiguous parts of ``data_dir``: CTC
    greedy, or the transcript of ``grammar`` of highest CTC likelihood (a transcript the model's
    tokens cannot spell is a ValueError naming it)."""
    from espnet_distill.data.tables import read_table, shard_utts

    utts = shard_utts(read_table(Path(data_dir) / "utt2spk").keys(), shard, num_shards)
    if not utts:
        return {}
    if grammar is None:
        return greedy_decode(model, data_dir, batch_seconds, device, bpe_model, utts, num_workers)
    return grammar_decode(model, data_dir, grammar, "bpe" if bpe_model else "char", batch_seconds, device,
                          bpe_model, utts, num_workers)


def write_hyps(path: str | Path, hyps: dict[str, str]) -> None:
    """``hyps`` ({utt: text}) as a Kaldi text file, sorted; an empty hypothesis keeps its line."""
    import logging

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt in sorted(hyps):
            f.write(f"{utt} {hyps[utt]}\n".replace(" \n", "\n"))
    logging.getLogger(__name__).info("%s: %d hypotheses", path, len(hyps))

