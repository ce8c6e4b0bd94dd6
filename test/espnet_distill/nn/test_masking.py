"""Span masking: the pretraining input and the fine-tuning masks."""
from __future__ import annotations

import pytest
import torch

from espnet_distill.nn.masking import FeatureMasking, span_mask


def test_span_mask_covers_valid_frames_only():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([200, 120, 15])
    m = span_mask(lengths, 200, 0.8, 10, g)
    assert not m[1, 120:].any()
    assert not m[2, 15:].any()
    frac = m[0].float().mean()
    assert 0.4 < frac < 0.75  # 0.8 / 10 span starts per frame, overlapping: about 55 %
    m2 = span_mask(lengths, 200, 0.8, 10, torch.Generator().manual_seed(0))
    assert torch.equal(m, m2)


def test_min_spans_zero_keeps_the_masked_fraction_on_short_utterances():
    """Sub-second utterances (FSDD digits: 20-30 frames): with fairseq's one-span minimum every
    utterance loses a whole span; with ``min_spans=0`` the masked fraction is about ``prob``."""
    lengths = torch.full((2000,), 25)
    forced = span_mask(lengths, 25, 0.1, 5, torch.Generator().manual_seed(0))
    free = span_mask(lengths, 25, 0.1, 5, torch.Generator().manual_seed(0), min_spans=0)
    assert (forced.sum(1) >= 5).all()
    assert forced.float().mean() > 0.19
    assert (free.sum(1) == 0).float().mean() > 0.4  # int(0.5 + u): no span half the time
    assert 0.08 < free.float().mean() < 0.12
    two = span_mask(lengths, 25, 0.1, 5, torch.Generator().manual_seed(0), min_spans=2)  # fairseq fine-tuning
    starts = (two[:, 1:] & ~two[:, :-1]).sum(1) + two[:, 0]
    assert (two.sum(1) >= 6).all()
    assert (starts >= 1).all()  # two distinct starts: at least 6 frames


def test_span_mask_follows_fairseqs_count_rule():
    """Per utterance: max(min_spans, int(prob T / span + u)) distinct starts in [0, T - span), so
    the masked frames lie in [0, T) and their count is about the rule's (overlaps aside)."""
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([400] * 500)
    m = span_mask(lengths, 420, 0.05, 10, g, min_spans=2)
    assert not m[:, 400:].any()
    # int(0.05 * 400 / 10 + u) = 2 spans: 11-20 frames (two spans that may overlap)
    assert ((m.sum(1) >= 11) & (m.sum(1) <= 20)).all()
    on_gpu_style = span_mask(lengths[:3], 420, 0.05, 10)  # no generator: the global stream
    assert on_gpu_style.shape == (3, 420)


def test_feature_masking_passes_min_spans_and_refuses_negative():
    x, valid = torch.ones(64, 25, 8), torch.ones(64, 25, dtype=torch.bool)
    torch.manual_seed(0)
    m = FeatureMasking(8, time_prob=0.1, time_length=5, time_min_spans=0).train()
    with torch.no_grad():
        m.mask_emb.fill_(0.0)
    out = m(x, valid)
    untouched = (out == 1).all(2).all(1)
    assert 0 < untouched.sum() < 64  # some utterances keep every frame, others get a span
    with pytest.raises(ValueError, match="time_min_spans must be >= 0"):
        FeatureMasking(8, time_prob=0.1, time_min_spans=-1)
