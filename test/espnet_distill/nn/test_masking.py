"""Span masking of the pretraining input."""
from __future__ import annotations

import torch

from espnet_distill.nn.masking import span_mask


def test_span_mask_covers_valid_frames_only():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([200, 120, 15])
    m = span_mask(lengths, 200, 0.8, 10, g)
    assert not m[1, 120:].any() and not m[2, 15:].any()
    frac = m[0].float().mean()
    assert 0.4 < frac < 0.75  # 0.8 / 10 span starts per frame, overlapping: about 55 %
    m2 = span_mask(lengths, 200, 0.8, 10, torch.Generator().manual_seed(0))
    assert torch.equal(m, m2)
