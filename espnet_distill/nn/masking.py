"""Span masking of frame sequences: HuBERT's pretraining masks and wav2vec 2.0 / HuBERT
fine-tuning's SpecAugment-like masks on the features entering the transformer.

Shapes: B batch, T frames, D features; masks are boolean, True where a frame (or channel) is masked.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def span_mask(lengths: torch.Tensor, max_len: int, prob: float, span: int,
              generator: torch.Generator | None = None, min_spans: int = 1) -> torch.Tensor:
    """(B,) valid frame counts -> (B, T) bool mask of masked frames (fairseq's static rule), built on
    the lengths' device for the whole batch at once (no loop over utterances, no device sync).

    For an utterance of T frames, ``max(min_spans, int(prob * T / span + u))`` (u ~ U[0, 1)) span
    starts are drawn without replacement from [0, T - span); spans may overlap. Padding is never
    masked; an utterance of at most ``span`` frames gets none. fairseq's fine-tuning asks for
    ``min_spans`` 2; 0 keeps the expected masked fraction at ``prob`` on short utterances too (with
    1, a 25-frame utterance loses a fifth of its frames to ``prob`` 0.1, ``span`` 5).
    """
    device = lengths.device
    t = lengths.long()
    room = (t - span).clamp(min=0)  # possible starts: [0, room)
    u = torch.rand(len(t), generator=generator, device=device)
    n = (prob * t / span + u).floor().long().clamp(min=min_spans)
    n = torch.minimum(n, room)
    # n distinct starts per row: the n lowest of random scores over the allowed positions
    pos = torch.arange(max_len, device=device)
    scores = torch.rand(len(t), max_len, generator=generator, device=device).masked_fill(pos >= room[:, None], 2.0)
    rank = scores.argsort(1).argsort(1)
    starts = rank < n[:, None]
    # frame f is masked when a span starts in (f - span, f]
    c = starts.long().cumsum(1)
    return (c - F.pad(c, (span, 0))[:, :max_len]) > 0


class FeatureMasking(nn.Module):
    """Fine-tuning masks on the (B, T, D) features that enter the transformer, as HuBERT and
    wav2vec 2.0 fine-tuning do (ESPnet's ``specaug`` would act on the frontend's *output*, the
    student's last layer, right before the CTC head): spans of ``time_length`` frames start with
    probability ``time_prob / time_length`` per frame and are replaced by a learned mask embedding;
    spans of ``channel_length`` channels are zeroed with ``channel_prob`` likewise (the same
    channels in every frame of an utterance). ``time_min_spans``: time spans every utterance gets
    at least (:func:`span_mask`'s ``min_spans``). Only in training mode; padding is never masked."""

    def __init__(self, dim: int, time_prob: float = 0.0, time_length: int = 10, channel_prob: float = 0.0,
                 channel_length: int = 10, time_min_spans: int = 1):
        super().__init__()
        for name, v in (("time_prob", time_prob), ("channel_prob", channel_prob)):
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if int(time_min_spans) < 0:
            raise ValueError(f"time_min_spans must be >= 0, got {time_min_spans}")
        self.time_prob, self.time_length = float(time_prob), int(time_length)
        self.time_min_spans = int(time_min_spans)
        self.channel_prob, self.channel_length = float(channel_prob), int(channel_length)
        self.mask_emb = nn.Parameter(torch.empty(dim).uniform_()) if time_prob > 0 else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D), mask: (B, T) valid frames -> x with masked spans (training only)."""
        if not self.training:
            return x
        b, t, d = x.shape
        if self.time_prob > 0:
            tm = span_mask(mask.sum(1), t, self.time_prob, self.time_length, min_spans=self.time_min_spans)
            x = torch.where(tm[..., None], self.mask_emb.to(x.dtype), x)
        if self.channel_prob > 0:
            cm = span_mask(torch.full((b,), d, device=x.device), d, self.channel_prob, self.channel_length)
            x = x.masked_fill(cm[:, None, :], 0.0)
        return x
