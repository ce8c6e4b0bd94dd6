"""Random equalisation and random crops of training waveforms."""
from __future__ import annotations

import math

import pytest
import torch

from espnet_distill.nn.augment import EQ_GUARD, random_crop, random_eq_gains, random_equalize


def tone(freq: float, n: int = 16000) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq * torch.arange(n) / 16000)


def rms_db(x: torch.Tensor) -> float:
    return 20 * math.log10(float(x.pow(2).mean().sqrt()))


def test_each_utterance_gets_its_own_filter_with_the_drawn_gain():
    n, freqs = 16000, (300.0, 1000.0, 3000.0)
    wav = torch.stack([tone(f, n) for f in freqs])
    lengths = torch.full((3,), n)
    out = random_equalize(wav, lengths, max_db=12.0, generator=torch.Generator().manual_seed(4))
    gains = random_eq_gains(3, (n + EQ_GUARD) // 2 + 1, 6, 12.0, generator=torch.Generator().manual_seed(4))
    drawn = []
    for i, f in enumerate(freqs):
        k = round(f * (n + EQ_GUARD) / 16000)
        drawn.append(20 * math.log10(float(gains[i, k])))
        measured = rms_db(out[i, 2000:14000]) - rms_db(wav[i, 2000:14000])  # away from the edges
        assert measured == pytest.approx(drawn[i], abs=0.3)
        assert abs(drawn[i]) <= 12.0
    assert len({round(d, 3) for d in drawn}) == 3


def test_padding_stays_zero_and_the_filter_is_short():
    wav = torch.zeros(2, 8000)
    wav[0, 4000] = 1.0  # an impulse: the output is the filter's impulse response
    wav[1, :5000] = tone(500.0, 5000)
    out = random_equalize(wav, torch.tensor([8000, 5000]), max_db=20.0, generator=torch.Generator().manual_seed(0))
    assert torch.all(out[1, 5000:] == 0)
    energy = out[0].pow(2)
    assert energy[4000 - 256:4000 + 257].sum() / energy.sum() > 0.999  # no wrap-around to the far ends


def test_zero_db_is_the_identity_and_anchors_are_checked():
    wav = torch.randn(2, 1000)
    assert random_equalize(wav, torch.tensor([1000, 800]), max_db=0.0) is wav
    with pytest.raises(ValueError, match="n_anchors"):
        random_eq_gains(1, 10, 1, 6.0)


def test_random_crop_cuts_both_ends_within_bounds():
    n = 16000
    wav = torch.arange(1, n + 1, dtype=torch.float32).repeat(3, 1)  # sample values = positions + 1
    lengths = torch.tensor([16000, 10000, 1000])
    wav[1, 10000:] = 0
    wav[2, 1000:] = 0
    out, new = random_crop(wav, lengths, max_samples=2400, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        start = int(out[i, 0]) - 1  # the first kept sample tells where the cut was
        end_cut = int(lengths[i]) - start - int(new[i])
        assert 0 <= start <= min(2400, 0.2 * int(lengths[i])) and 0 <= end_cut <= min(2400, 0.2 * int(lengths[i]))
        torch.testing.assert_close(out[i, : int(new[i])], wav[i, start:start + int(new[i])])  # kept in order
        assert torch.all(out[i, int(new[i]):] == 0)
    assert int(new[2]) >= 600  # a short utterance loses at most a fifth at each end
    assert out.shape[1] == int(new.max())  # the batch is as wide as its longest utterance
    cuts = [random_crop(wav[:1], lengths[:1], 2400, generator=torch.Generator().manual_seed(s))[1].item()
            for s in range(20)]
    assert len(set(cuts)) > 10  # a fresh draw each time
    same, same_len = random_crop(wav, lengths, 0)
    assert same is wav and same_len is lengths
