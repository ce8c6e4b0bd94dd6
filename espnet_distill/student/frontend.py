"""Student front-ends: waveform (B, L) -> features (B, T, D) and frame mask (B, T).

Both give exactly the CNN's frame count, T = floor((L - 400) / 320) + 1, so a student of
either front-end predicts the teacher's frames one to one.

- ``cnn``: HuBERT's waveform CNN, optional LayerNorm (HuBERT has it, DistilHuBERT does not),
  projection to D. Parameter names follow fairseq/s3prl.
- ``fbank``: 80-dim Kaldi fbank (25 ms / 10 ms, int16 scale, computed batched on the device),
  global CMVN (stored in the checkpoint), Conv1d(80 -> 2D, k 5, s 2, p 2) + GLU, Linear(D, D),
  dropout.

``feature_grad_mult`` (both; default 1) scales the gradient of the front-end's feature extractor,
as s3prl's distiller and fairseq do for the waveform CNN: the CNN (before its LayerNorm and
projection), or the fbank front-end's Conv1d + GLU (before its Linear). 0 freezes it.

Select one with ``FRONTENDS[name](**conf)``.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from espnet_distill.data.audio import FRAME_HOP, FRAME_WINDOW, SAMPLE_RATE, cnn_frames
from espnet_distill.nn.hubert import (
    DEFAULT_CONV,
    ConvFeatureExtractor,
    check_grad_scale,
    lengths_to_mask,
    scaled_gradient,
)

logger = logging.getLogger(__name__)

FBANK_WINDOW, FBANK_SHIFT = 400, 160  # 25 ms, 10 ms at 16 kHz
FLOAT_EPS = torch.finfo(torch.float32).eps


class CNNFrontend(nn.Module):
    """HuBERT's CNN -> [LayerNorm] -> Linear(C, D). Keys: feature_extractor.*, layer_norm, post_extract_proj."""

    @property
    def grad_mult(self) -> float:
        return self.feature_extractor.grad_mult

    @grad_mult.setter
    def grad_mult(self, scale: float) -> None:
        self.feature_extractor.grad_mult = check_grad_scale(scale)

    def __init__(self, dim: int, conv_layers: list | None = None, extractor_mode: str = "default",
                 layer_norm: bool = True, dropout: float = 0.0, feature_grad_mult: float = 1.0):
        super().__init__()
        conv_layers = [list(c) for c in (conv_layers or DEFAULT_CONV)]
        self.conv_layers = conv_layers
        self.feature_extractor = ConvFeatureExtractor(conv_layers, extractor_mode)
        self.feature_extractor.grad_mult = check_grad_scale(feature_grad_mult)
        c = conv_layers[-1][0]
        self.layer_norm = nn.LayerNorm(c) if layer_norm else None
        self.post_extract_proj = nn.Linear(c, dim) if c != dim else None
        self.dropout = dropout
        self.dim = dim

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, n = self.feature_extractor(wav, lengths)
        x = feats.transpose(1, 2)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return F.dropout(x, self.dropout, self.training), lengths_to_mask(n, x.shape[1])


def povey_window(n: int) -> torch.Tensor:
    return (0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n) / (n - 1))).pow(0.85)


def kaldi_mel_banks(num_bins: int, n_fft: int = 512, rate: int = SAMPLE_RATE, low: float = 20.0,
                    high: float = 0.0) -> torch.Tensor:
    """(num_bins, n_fft // 2 + 1) Kaldi mel filterbank (triangles on the mel scale)."""
    from torchaudio.compliance.kaldi import get_mel_banks

    banks, _ = get_mel_banks(num_bins, n_fft, float(rate), low, high, 100.0, -500.0, 1.0)
    return F.pad(banks, (0, 1))  # the Nyquist bin


def dft_matrix(n_fft: int = 512, frame: int = FBANK_WINDOW) -> torch.Tensor:
    """(frame, 2 * (n_fft // 2 + 1)): [cos | -sin] of the real DFT of a zero-padded frame."""
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * math.pi * torch.arange(frame, dtype=torch.float64)[:, None] * k[None, :] / n_fft
    return torch.cat([angle.cos(), -angle.sin()], dim=1).float()


def kaldi_fbank(wav: torch.Tensor, lengths: torch.Tensor, mel: torch.Tensor,
                window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Kaldi fbank (as ``torchaudio.compliance.kaldi.fbank`` with dither 0, snip_edges):
    wav (B, L) in [-1, 1] -> log-mel (B, T_fb, M), valid frames (B,) = floor((L - 400) / 160) + 1.

    Per frame: int16 scaling, DC removal, pre-emphasis 0.97, Povey window, |FFT_512|^2,
    mel, log with a float-eps floor. Frames past an utterance's end are computed but masked.
    While traced (ONNX export) the frames come by indexing and the power spectrum by matrix
    products with :func:`dft_matrix`: ops that keep T dynamic and that ONNX has (no rfft); the
    values are those of the eager path up to float rounding.
    """
    tracing = torch.jit.is_tracing()
    x = wav * 32768.0
    if x.shape[1] < FBANK_WINDOW:
        x = F.pad(x, (0, FBANK_WINDOW - x.shape[1]))
    if tracing:  # the (B, T, 400) frames of unfold, by indexing
        t = (x.shape[1] - FBANK_WINDOW) // FBANK_SHIFT + 1
        starts = torch.arange(t, device=x.device)[:, None] * FBANK_SHIFT
        frames = x[:, starts + torch.arange(FBANK_WINDOW, device=x.device)]
    else:
        frames = x.unfold(1, FBANK_WINDOW, FBANK_SHIFT)  # (B, T, 400)
    frames = frames - frames.mean(-1, keepdim=True)
    prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = (frames - 0.97 * prev) * window
    if tracing:  # |FFT_512|^2 as [real | imaginary] parts of one matrix product
        re, im = torch.matmul(frames, dft_matrix().to(frames)).chunk(2, dim=-1)
        spec = re.pow(2) + im.pow(2)
    else:
        spec = torch.fft.rfft(frames, n=512).abs().pow(2)  # (B, T, 257)
    fb = torch.matmul(spec, mel.T).clamp(min=FLOAT_EPS).log()
    n = (torch.div(lengths - FBANK_WINDOW, FBANK_SHIFT, rounding_mode="floor") + 1).clamp(min=0)
    return fb, n


def _xavier_normal_zero_bias(linear: nn.Linear) -> None:
    nn.init.xavier_normal_(linear.weight)
    nn.init.zeros_(linear.bias)


# FbankFrontend's proj_init: how Linear(D, D) starts ("pytorch": nn.Linear's own uniform init)
PROJ_INITS = {"pytorch": lambda linear: None, "xavier_normal": _xavier_normal_zero_bias}


class FbankFrontend(nn.Module):
    """Fbank -> CMVN -> Conv1d(80, 2D, 5, stride 2, pad 2) + GLU -> Linear(D, D) -> dropout.
    ``proj_init`` (:data:`PROJ_INITS`) starts the Linear as nn.Linear does or Xavier-normal with a
    zero bias (the authors' FbankExtractor, docs/fidelity.md)."""

    def __init__(self, dim: int, num_mel_bins: int = 80, dropout: float = 0.1, feature_grad_mult: float = 1.0,
                 proj_init: str = "pytorch"):
        super().__init__()
        if proj_init not in PROJ_INITS:
            raise ValueError(f"proj_init {proj_init!r}: expected one of {sorted(PROJ_INITS)}")
        self.grad_mult = check_grad_scale(feature_grad_mult)
        self.dim, self.num_mel_bins = dim, num_mel_bins
        self.register_buffer("mel", kaldi_mel_banks(num_mel_bins), persistent=False)
        self.register_buffer("window", povey_window(FBANK_WINDOW), persistent=False)
        self.register_buffer("cmvn_mean", torch.zeros(num_mel_bins))
        self.register_buffer("cmvn_std", torch.ones(num_mel_bins))
        self.conv = nn.Conv1d(num_mel_bins, 2 * dim, kernel_size=5, stride=2, padding=2)
        self.proj = nn.Linear(dim, dim)
        PROJ_INITS[proj_init](self.proj)
        self.dropout = dropout

    def fbank(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) -> un-normalised log-mel (B, T_fb, M) and its frame mask (B, T_fb)."""
        with torch.autocast(wav.device.type, enabled=False):
            fb, n = kaldi_fbank(wav.float(), lengths, self.mel, self.window)
        return fb, lengths_to_mask(n, fb.shape[1])

    @torch.no_grad()
    def set_cmvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.cmvn_mean.copy_(mean)
        self.cmvn_std.copy_(std.clamp(min=1e-5))

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fb, fmask = self.fbank(wav, lengths)
        x = (fb - self.cmvn_mean) / self.cmvn_std
        x = (x * fmask[..., None]).to(self.conv.weight.dtype).transpose(1, 2)  # (B, M, T_fb)
        x = scaled_gradient(self._subsample, self.grad_mult, x).transpose(1, 2)  # (B, T, D), T = (T_fb - 1) // 2 + 1
        # the CNN front-end's frame count for the batch width (as the teacher's CNN gives):
        # computed from sizes, not from the lengths' values, so that an export keeps T dynamic
        t = (wav.shape[1] - FRAME_WINDOW) // FRAME_HOP + 1
        x = x[:, : max(t, 1) if isinstance(t, int) else t]  # eager: at least one (masked) frame
        n = cnn_frames(lengths)
        x = F.dropout(self.proj(x), self.dropout, self.training)
        return x, lengths_to_mask(n, x.shape[1])


    def _subsample(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.conv(x), dim=1)


FRONTENDS: dict[str, type[nn.Module]] = {"cnn": CNNFrontend, "fbank": FbankFrontend}


CMVN_BATCH_UTTS = 16  # utterances per fbank batch while estimating the CMVN


def cmvn_sample(num_utts: int, max_utts: int) -> list[int]:
    """Indices of at most ``max_utts`` utterances spread evenly over a set of ``num_utts``: the
    sample :func:`fit_cmvn` estimates the global CMVN on."""
    return list(range(0, num_utts, max(1, num_utts // max_utts)))[:max_utts]


def fit_cmvn(frontend: FbankFrontend, dataset, max_utts: int) -> int:
    """Estimate (:func:`estimate_cmvn`) and set the fbank front-end's global CMVN from the
    :func:`cmvn_sample` of ``dataset`` (items as ``data.dataset.AudioDataset`` gives them); returns
    the frames it used."""
    from espnet_distill.data.dataset import collate

    idx = cmvn_sample(len(dataset), max_utts)
    batches = (collate([dataset[i] for i in idx[j:j + CMVN_BATCH_UTTS]]) for j in range(0, len(idx), CMVN_BATCH_UTTS))
    mean, std, frames = estimate_cmvn(frontend, batches)
    frontend.set_cmvn(mean, std)
    logger.info("fbank CMVN from %d frames of %d utterances", frames, len(idx))
    return frames


@torch.no_grad()
def estimate_cmvn(frontend: FbankFrontend, batches) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Global mean and std of the fbank over valid frames of ``batches`` (dicts with wav, lengths)."""
    s = s2 = None
    count = 0
    for b in batches:
        fb, m = frontend.fbank(b["wav"], b["lengths"])
        v = fb[m].double()
        s = v.sum(0) if s is None else s + v.sum(0)
        s2 = (v * v).sum(0) if s2 is None else s2 + (v * v).sum(0)
        count += v.shape[0]
    mean = s / count
    std = (s2 / count - mean * mean).clamp(min=1e-10).sqrt()
    return mean.float(), std.float(), count
