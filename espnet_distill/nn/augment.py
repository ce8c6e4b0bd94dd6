"""Waveform augmentation for fine-tuning, against what recording and editing do to speech.

- :func:`random_equalize`: a random smooth filter per utterance. Microphones and rooms colour
  speech with a fixed filter; a model fine-tuned on a few speakers learns their colouring, and a
  different random colouring per utterance teaches it to ignore it.
- :func:`random_crop`: random cuts off both ends. Endpointing trims recordings, sometimes into
  the word; cuts show a model words without their first or last sounds.
- :func:`random_onset_trim`: the cut that endpointing makes into a word, aimed: the utterance
  starts at its first voiced frame (:func:`voiced_onsets`), its unvoiced onset (the /t/ of
  "two", the /s/ of "six") gone.

What they did on real speech is measured in egs2/fsdd/distill1/README.md.

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
    return keep_span(wav, lengths, cuts[:, 0], lengths.cpu() - cuts.sum(1))


def keep_span(wav: torch.Tensor, lengths: torch.Tensor, start: torch.Tensor, new_lengths: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) waveforms -> samples ``start`` .. ``start + new_lengths`` of each (``start`` and
    ``new_lengths``: (B,) on the CPU), moved to the start of a batch as wide as the longest kept
    span; samples past the new lengths are zero. Returns the waveforms and the new lengths (as
    ``lengths``: device and dtype)."""
    n = int(new_lengths.max()) if len(new_lengths) else 0
    pos = torch.arange(n)[None, :]
    idx = (start[:, None] + pos).clamp(max=max(wav.shape[1] - 1, 0)).to(wav.device)
    keep = (pos < new_lengths[:, None]).to(wav.device)
    return wav.gather(1, idx) * keep, new_lengths.to(lengths.device, lengths.dtype)


def voiced_onsets(wav: torch.Tensor, lengths: torch.Tensor, rate: int = SAMPLE_RATE, frame_ms: float = 40.0,
                  hop_ms: float = 10.0, fmin: float = 70.0, fmax: float = 400.0, threshold: float = 0.5,
                  floor_db: float = 30.0) -> torch.Tensor:
    """(B, L) waveforms, (B,) lengths -> (B,) the first sample of each utterance's first voiced
    frame (0 where none is, or where the utterance is shorter than a frame). A frame (``frame_ms``
    long, every ``hop_ms``) is voiced when its normalised autocorrelation (unbiased) peaks above
    ``threshold`` at a lag of a pitch in ``fmin`` .. ``fmax`` Hz and its energy is within
    ``floor_db`` dB of the utterance's loudest frame. Frames past ``lengths`` never count."""
    size, hop = round(rate * frame_ms / 1000), round(rate * hop_ms / 1000)
    b = wav.shape[0]
    if wav.shape[1] < size:
        return torch.zeros(b, dtype=torch.long)
    frames = wav.float().unfold(1, size, hop)  # (B, F, size)
    frames = frames - frames.mean(-1, keepdim=True)
    n_frames = frames.shape[1]
    valid = (torch.arange(n_frames, device=wav.device)[None, :] * hop + size) <= lengths.to(wav.device)[:, None]
    energy = 10.0 * torch.log10(frames.pow(2).mean(-1) + 1e-10)
    loudest = energy.masked_fill(~valid, -torch.inf).amax(1, keepdim=True)
    power = torch.fft.rfft(frames, n=2 * size).abs().pow(2)
    acf = torch.fft.irfft(power, n=2 * size)[..., :size]  # (B, F, size) autocorrelation at lags 0 .. size-1
    lags = torch.arange(size, device=wav.device)
    acf = acf / acf[..., :1].clamp_min(1e-12) / ((size - lags) / size)  # normalised, unbiased
    lo, hi = int(rate / fmax), int(rate / fmin)
    voiced = (acf[..., lo:hi].amax(-1) > threshold) & (energy > loudest - floor_db) & valid
    first = voiced.long().argmax(1)  # 0 where no frame is voiced
    return (first * hop).cpu()


def random_onset_trim(wav: torch.Tensor, lengths: torch.Tensor, prob: float, rate: int = SAMPLE_RATE,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) waveforms, (B,) lengths -> the same with, for each utterance with probability
    ``prob``, everything before its first voiced frame (:func:`voiced_onsets`) cut off: the
    utterance starts where its voicing does, as a word does after an endpointer trimmed its
    unvoiced onset. Returns the waveforms (as :func:`keep_span`) and the new lengths. ``prob`` 0
    returns the input."""
    if prob <= 0:
        return wav, lengths
    chosen = torch.rand(wav.shape[0], generator=generator) < prob
    if not chosen.any():
        return wav, lengths
    start = torch.zeros(wav.shape[0], dtype=torch.long)
    start[chosen] = voiced_onsets(wav[chosen.to(wav.device)], lengths[chosen.to(lengths.device)], rate)
    return keep_span(wav, lengths, start, lengths.cpu() - start)
