"""Random equalisation, random crops and onsets trimmed to voicing of training waveforms."""
from __future__ import annotations

import math

import pytest
import torch

from espnet_distill.nn.augment import (
    EQ_GUARD,
    random_crop,
    random_eq_gains,
    random_equalize,
    random_onset_trim,
    voiced_onsets,
)


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
        assert 0 <= start <= min(2400, 0.2 * int(lengths[i]))
        assert 0 <= end_cut <= min(2400, 0.2 * int(lengths[i]))
        torch.testing.assert_close(out[i, : int(new[i])], wav[i, start:start + int(new[i])])  # kept in order
        assert torch.all(out[i, int(new[i]):] == 0)
    assert int(new[2]) >= 600  # a short utterance loses at most a fifth at each end
    assert out.shape[1] == int(new.max())  # the batch is as wide as its longest utterance
    cuts = [random_crop(wav[:1], lengths[:1], 2400, generator=torch.Generator().manual_seed(s))[1].item()
            for s in range(20)]
    assert len(set(cuts)) > 10  # a fresh draw each time
    same, same_len = random_crop(wav, lengths, 0)
    assert same is wav
    assert same_len is lengths


def unvoiced_then_voiced(noise_ms: int, voiced_ms: int = 300, seed: int = 0) -> torch.Tensor:
    """A word that starts unvoiced: white noise (a /t/ or /s/, 12 dB below the vowel), then a
    150 Hz vowel with five harmonics."""
    g = torch.Generator().manual_seed(seed)
    noise = 0.1 * torch.randn(noise_ms * 16, generator=g)
    t = torch.arange(voiced_ms * 16) / 16000
    vowel = sum(torch.sin(2 * math.pi * 150 * k * t) / k for k in range(1, 6)) * 0.4
    return torch.cat([noise, vowel])


def test_voiced_onsets_find_where_the_vowel_starts():
    words = [unvoiced_then_voiced(ms, seed=ms) for ms in (0, 60, 120)]
    n = max(len(w) for w in words)
    wav = torch.stack([torch.nn.functional.pad(w, (0, n - len(w))) for w in words])
    lengths = torch.tensor([len(w) for w in words])
    onsets = voiced_onsets(wav, lengths)
    for got, ms in zip(onsets.tolist(), (0, 60, 120)):
        assert ms * 16 - 640 <= got <= ms * 16, (got, ms)  # within one 40 ms frame before the vowel
    # noise alone (nothing voiced), padding after a short word, audio shorter than a frame: 0
    g = torch.Generator().manual_seed(1)
    assert voiced_onsets(torch.randn(1, 8000, generator=g), torch.tensor([8000])).tolist() == [0]
    short = torch.cat([0.1 * torch.randn(2000, generator=g), torch.zeros(6000)])[None]
    assert voiced_onsets(short, torch.tensor([2000])).tolist() == [0]
    assert voiced_onsets(torch.zeros(2, 300), torch.tensor([300, 200])).tolist() == [0, 0]


def test_random_onset_trim_starts_chosen_utterances_at_their_voicing():
    words = [unvoiced_then_voiced(100, seed=s) for s in range(8)]
    wav, lengths = torch.stack(words), torch.full((8,), len(words[0]))
    onsets = voiced_onsets(wav, lengths)
    assert (onsets >= 1600 - 640).all()  # the 100 ms of noise, less a frame at most
    out, new = random_onset_trim(wav, lengths, prob=0.5, generator=torch.Generator().manual_seed(3))
    chosen = torch.rand(8, generator=torch.Generator().manual_seed(3)) < 0.5
    assert 0 < int(chosen.sum()) < 8
    for i in range(8):
        start = int(onsets[i]) if chosen[i] else 0
        assert int(new[i]) == len(words[i]) - start
        torch.testing.assert_close(out[i, : int(new[i])], wav[i, start:])
    assert out.shape[1] == int(new.max())
    assert new.dtype == lengths.dtype
    same, same_len = random_onset_trim(wav, lengths, 0.0)
    assert same is wav
    assert same_len is lengths
