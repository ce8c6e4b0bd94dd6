"""Waveform augmentation for fine-tuning, against what recording and editing do to speech.

- :func:`random_equalize`: a random smooth filter per utterance. Microphones and rooms colour
  speech with a fixed filter: on FSDD the held-out speaker's recordings carry a fifth of the
  others' energy below 250 Hz and twice theirs at 1-2 kHz. A model fine-tuned on a few speakers
  learns their colouring; a different random colouring per utterance teaches it to ignore it.
- :func:`random_crop`: random cuts off both ends. Endpointing trims recordings, sometimes into
  the word: the held-out FSDD speaker's "two" starts at the vowel, its /t/ burst cut off, while
  every training speaker's "two" has it; cuts show a model words without their first or last
  sounds. (Measured on FSDD it did not lower that speaker's WER: egs2/fsdd/distill1/README.md.)

Shapes: B batch, L samples (padded); ``lengths`` (B,) valid samples per utterance.
"""
from __future__ import annotations

import torch

from espnet_distill.data.audio import SAMPLE_RATE

EQ_GUARD = 512  # zero samples appended before the FFT, so that the filter's (short) tail does not wrap around


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(f / 700.0)


def random_eq_gains(batch: int, n_bins: int, n_anchors: int, max_db: float, rate: int = SAMPLE_RATE,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, n_bins) linear amplitude gains of random smooth filters over the bins of an rFFT
    (0 .. rate / 2): ``n_anchors`` gains in dB, each uniform in [-max_db, max_db], equally spaced
    on the mel scale from 0 Hz to the Nyquist frequency and interpolated linearly in between."""
    if n_anchors < 2:
        raise ValueError(f"n_anchors must be at least 2, got {n_anchors}")
    db = (torch.rand(batch, n_anchors, generator=generator) * 2.0 - 1.0) * max_db
    mel = hz_to_mel(torch.linspace(0.0, rate / 2, n_bins))
    pos = mel / mel[-1] * (n_anchors - 1)  # (n_bins,) position on the anchor grid
    lo = pos.floor().long().clamp(max=n_anchors - 2)
    frac = pos - lo
    curve = db[:, lo] * (1.0 - frac) + db[:, lo + 1] * frac
    return torch.pow(10.0, curve / 20.0)


def random_equalize(wav: torch.Tensor, lengths: torch.Tensor, max_db: float, n_anchors: int = 6,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, L) waveforms -> the same, each filtered by its own random smooth filter
    (:func:`random_eq_gains`), applied in the frequency domain; samples past ``lengths`` stay zero.
    ``max_db`` 0 returns ``wav`` unchanged."""
    if max_db <= 0:
        return wav
    b, n = wav.shape
    n_fft = n + EQ_GUARD
    spec = torch.fft.rfft(wav.float(), n=n_fft)
    gains = random_eq_gains(b, spec.shape[1], n_anchors, max_db, generator=generator).to(wav.device)
    out = torch.fft.irfft(spec * gains, n=n_fft)[:, :n]
    valid = torch.arange(n, device=wav.device)[None, :] < lengths.to(wav.device)[:, None]
    return (out * valid).to(wav.dtype)


def random_crop(wav: torch.Tensor, lengths: torch.Tensor, max_samples: int, max_fraction: float = 0.2,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) waveforms, (B,) lengths -> the same with a random number of samples cut off the start
    and off the end of each utterance: each cut uniform in [0, max_samples], at most
    ``max_fraction`` of the utterance's length. The kept samples move to the start; the new
    lengths are returned, samples past them are zero, and the batch is as wide as its longest
    utterance now is (ESPnet checks that its frontend's output is no wider than the longest
    length). ``max_samples`` 0 returns the input."""
    if max_samples <= 0:
        return wav, lengths
    b = wav.shape[0]
    u = torch.rand(b, 2, generator=generator)
    cap = (lengths.cpu().double() * max_fraction).floor().long()
    cuts = torch.minimum((u * (max_samples + 1)).long().clamp(max=max_samples), cap[:, None])
    start, new_lengths = cuts[:, 0], lengths.cpu() - cuts.sum(1)
    n = int(new_lengths.max()) if b else 0
    pos = torch.arange(n)[None, :]
    idx = (start[:, None] + pos).clamp(max=wav.shape[1] - 1).to(wav.device)
    keep = (pos < new_lengths[:, None]).to(wav.device)
    return wav.gather(1, idx) * keep, new_lengths.to(lengths.device, lengths.dtype)
