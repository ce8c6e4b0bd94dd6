"""One teacher API over local HuBERT checkpoints and s3prl upstreams.

    teacher = build_teacher({"backend": "local", "path": "exp/teacher/teacher.pt"})
    out = teacher(wavs, lengths)    # wavs (B, L) 16 kHz float, lengths (B,)
    out.hidden   # list of 1 + num_layers tensors (B, T, D); hidden[0] is the input to layer 1
    out.mask     # (B, T) bool, True on valid frames
    out.logits   # (B, T, C) cos(final_proj(h_L), e_c) / tau, or None without a codebook head

A teacher is frozen, in eval mode (dropout and layer drop off) and runs under no_grad; inside
``with teacher.dropout_on():`` its dropouts act (layer drop stays off), as s3prl's distiller
runs its teacher (``distill.teacher_mode: train``).
Backends are chosen by the ``backend`` key of ``conf/teacher/*.yaml`` (registry ``BACKENDS``).
"""
from __future__ import annotations

import abc
import contextlib
import difflib
import logging
import os
import pickle
import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from espnet_distill.checkpoint_io import CheckpointError, safe_load
from espnet_distill.config import ConfigError, from_dict
from espnet_distill.data.audio import FRAME_HOP, FRAME_WINDOW, SAMPLE_RATE, cnn_frames
from espnet_distill.nn.hubert import HubertModel, lengths_to_mask
from espnet_distill.teacher.checkpoints import infer_config, load_hubert

logger = logging.getLogger(__name__)


@dataclass
class TeacherOutput:
    hidden: list[torch.Tensor]
    mask: torch.Tensor
    logits: torch.Tensor | None


class TeacherError(ValueError):
    pass


class Teacher(nn.Module, metaclass=abc.ABCMeta):
    """Base class: frozen, eval mode, no_grad. Subclasses implement ``_forward``."""

    name: str = "teacher"
    layout: str = "unknown"  # the checkpoint layout it was read from (teacher_info shows it)
    receptive_field: int = FRAME_WINDOW

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        for m in self.modules():  # layer drop off for good (HuBERT's encoder, s3prl's and fairseq's too)
            if isinstance(getattr(m, "layerdrop", None), float):
                m.layerdrop = 0.0
        super().train(False)

    def train(self, mode: bool = True) -> "Teacher":  # a teacher leaves eval mode only in dropout_on()
        return super().train(False)

    @contextlib.contextmanager
    def dropout_on(self) -> Iterator[None]:
        """The teacher in train mode for the block (its dropouts act; layer drop stays off), then back
        in eval mode."""
        nn.Module.train(self, True)
        try:
            yield
        finally:
            nn.Module.train(self, False)

    @property
    @abc.abstractmethod
    def num_layers(self) -> int:
        """Number of transformer layers (hidden states are 1 + num_layers)."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Width of the hidden states."""

    @property
    def has_codebook(self) -> bool:
        return self.label_embeddings() is not None

    def label_embeddings(self) -> torch.Tensor | None:
        """(C, F) frozen codebook embeddings, or None."""
        return None

    def mask_embedding(self) -> torch.Tensor | None:
        """(D,) the embedding its pretraining put in masked frames, or None."""
        return None

    @property
    def logit_temp(self) -> float:
        return 0.1

    def hubert_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The weights with fairseq/HuBERT parameter names (to initialise students), or None."""
        return None

    def to_hubert(self) -> HubertModel:
        """This teacher as our :class:`HubertModel` (saved as ``exp/teacher/teacher.pt`` by stage 2,
        the checkpoint every later stage reads); raises :class:`TeacherError` with the reason when
        the teacher is not a HuBERT we can express."""
        raise TeacherError(f"teacher '{self.name}' is not a HuBERT model this toolkit can rebuild")

    def check_lengths(self, lengths: torch.Tensor, utt_ids: list[str] | None = None) -> None:
        short = (lengths < self.receptive_field).nonzero().flatten().tolist()
        if short:
            i = short[0]
            who = f"utterance '{utt_ids[i]}'" if utt_ids else f"batch item {i}"
            raise TeacherError(
                f"{who} has {int(lengths[i])} samples ({int(lengths[i]) / SAMPLE_RATE:.4f} s), shorter than the "
                f"teacher's receptive field of {self.receptive_field} samples; filter such utterances out"
            )

    @torch.no_grad()
    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor, utt_ids: list[str] | None = None,
                num_layers: int | None = None, lengths_cpu: torch.Tensor | None = None) -> TeacherOutput:
        """``num_layers``: run only the first N transformer layers (``hidden`` then has N + 1
        entries and no logits; 0 = the CNN and projection only, what front-end adaptation needs);
        backends that cannot stop early return every layer. ``lengths_cpu``: the lengths on the
        host, so that the length check does not wait for the device."""
        self.check_lengths(lengths if lengths_cpu is None else lengths_cpu, utt_ids)
        return self._forward(wavs, lengths, num_layers)

    @abc.abstractmethod
    def _forward(self, wavs: torch.Tensor, lengths: torch.Tensor, num_layers: int | None = None) -> TeacherOutput:
        """The model's forward pass, called under no_grad after the length check."""


class HubertTeacher(Teacher):
    """A teacher from any local HuBERT checkpoint (see teacher/checkpoints.py)."""

    def __init__(self, model: HubertModel, name: str = "hubert", layout: str = "our HubertModel"):
        super().__init__()
        self.model = model
        self.name = name
        self.layout = layout
        self.receptive_field = model.cfg.receptive_field
        self._freeze()

    @property
    def num_layers(self) -> int:
        return self.model.cfg.num_layers

    @property
    def dim(self) -> int:
        return self.model.cfg.embed_dim

    def label_embeddings(self) -> torch.Tensor | None:
        return self.model.label_embs_concat if self.model.has_codebook else None

    def mask_embedding(self) -> torch.Tensor | None:
        return self.model.mask_emb

    def hubert_state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def to_hubert(self) -> HubertModel:
        return self.model

    @property
    def logit_temp(self) -> float:
        return self.model.cfg.logit_temp

    def _forward(self, wavs, lengths, num_layers=None) -> TeacherOutput:
        if num_layers is not None and num_layers < self.num_layers:
            hidden, mask = self.model(wavs, lengths, num_layers=num_layers)
            return TeacherOutput(hidden, mask, None)
        hidden, mask = self.model(wavs, lengths)
        logits = self.model.logits(hidden[-1]) if self.model.has_codebook else None
        return TeacherOutput(hidden, mask, logits)


class S3PRLTeacher(Teacher):
    """Any s3prl upstream by name (``S3PRLUpstream``); the codebook head is taken from the loaded
    model where it has one (HuBERT's ``final_proj`` and ``label_embs_concat``; WavLM has none)."""

    def __init__(self, name: str, path_or_url: str | None = None, refresh: bool = False):
        super().__init__()
        from s3prl.nn import S3PRLUpstream

        names = S3PRLUpstream.available_names()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            raise TeacherError(f"unknown s3prl upstream '{name}'; close matches: {close or 'none'}")
        kwargs = {}
        if path_or_url:
            path_or_url = local_or_http(path_or_url)
            if not _is_url(path_or_url):  # a local file: refuse anything but weights before s3prl sees it
                safe_load(path_or_url)
            kwargs["path_or_url"] = path_or_url
        try:
            with weights_only_torch_load():
                self.upstream = S3PRLUpstream(name, refresh=refresh, **kwargs)
        except pickle.UnpicklingError as e:
            raise TeacherError(
                f"s3prl upstream '{name}': its checkpoint {path_or_url or '(from the hub)'} holds pickled Python "
                f"objects, which espnet_distill never unpickles (that can run code): {str(e).splitlines()[0][:200]}. "
                "Convert it to a weights-only file (python -m espnet_distill.bin.teacher_info --checkpoint X "
                "--export Y) and use backend: local"
            ) from None
        except Exception as e:
            raise TeacherError(
                f"s3prl upstream '{name}' could not be loaded ({type(e).__name__}: {str(e)[:300]}); "
                "without network, download its checkpoint elsewhere and use backend: local"
            ) from None
        self.name = name
        self.layout = f"s3prl upstream {name}" + (f" ({path_or_url})" if path_or_url else "")
        expert = getattr(self.upstream, "upstream", None)
        inner = getattr(expert, "model", None)
        # HuBERT keeps normalize in its task config, WavLM in its model config
        self._normalize = bool(getattr(getattr(expert, "task_cfg", None) or getattr(expert, "cfg", None),
                                       "normalize", False))
        rebuildable = all(hasattr(inner, a) for a in ("encoder", "feature_extractor"))
        self._model = inner if rebuildable and hasattr(inner.encoder, "layers") else None
        has_head = inner is not None and hasattr(inner, "final_proj") and hasattr(inner, "label_embs_concat")
        self._head = inner if has_head else None
        self._freeze()
        with torch.no_grad():
            hs, _ = self.upstream(torch.zeros(1, SAMPLE_RATE), torch.tensor([SAMPLE_RATE]))
        self._num_layers, self._dim = len(hs) - 1, hs[0].shape[-1]

    @property
    def num_layers(self) -> int:
        return self._num_layers

    @property
    def dim(self) -> int:
        return self._dim

    def label_embeddings(self):
        return None if self._head is None else self._head.label_embs_concat

    def mask_embedding(self):
        return getattr(self._model, "mask_emb", None)

    def hubert_state_dict(self):
        return None if self._head is None else self._head.state_dict()

    def to_hubert(self) -> HubertModel:
        """s3prl's HuBERT or WavLM (fairseq and unilm parameter names) rebuilt as ours; the
        configuration comes from the weights' shapes and the loaded modules, and the rebuilt model
        must reproduce s3prl's hidden states on a test signal (else TeacherError)."""
        inner = self._model
        if inner is None:
            raise TeacherError(f"s3prl upstream '{self.name}' is not a HuBERT or WavLM model: "
                               "it can teach, but it cannot be rebuilt as a checkpoint of ours")
        convs = [layer[0] for layer in inner.feature_extractor.conv_layers]
        attn = inner.encoder.layers[0].self_attn
        hints = {
            "encoder_num_heads": attn.num_heads,
            "encoder_layer_norm_first": bool(inner.encoder.layer_norm_first),
            "extractor_conv_layer_config": [[c.out_channels, c.kernel_size[0], c.stride[0]] for c in convs],
            "logit_temp": float(getattr(inner, "logit_temp", 0.1)),
            "normalize": self._normalize,
        }
        if hasattr(attn, "max_distance"):  # WavLM
            hints["encoder_max_distance"] = int(attn.max_distance)
        state = {k: v.detach().clone() for k, v in inner.state_dict().items()}
        try:
            model = HubertModel(infer_config(state, self.name, hints))
            model.load_state_dict(state, strict=True)
        except (CheckpointError, RuntimeError) as e:
            raise TeacherError(f"s3prl upstream '{self.name}' could not be rebuilt as our HuBERT: {e}") from None
        model.eval()
        torch.manual_seed(0)
        wav, n = 0.1 * torch.randn(1, SAMPLE_RATE), torch.tensor([SAMPLE_RATE])
        with torch.no_grad():
            ours, _ = model(wav, n)
        theirs = self(wav, n).hidden
        diff = max(float((a - b).abs().max()) for a, b in zip(ours, theirs))
        if len(ours) != len(theirs) or diff > 1e-4:
            raise TeacherError(f"s3prl upstream '{self.name}' rebuilt as our HuBERT differs from s3prl's forward "
                               f"(max abs difference {diff:.2e})")
        return model

    @property
    def logit_temp(self) -> float:
        return float(getattr(self._head, "logit_temp", 0.1))

    def _forward(self, wavs, lengths, num_layers=None) -> TeacherOutput:
        hs, hs_len = self.upstream(wavs, lengths)
        n = hs_len[0].to(wavs.device)
        if self.upstream.downsample_rates[0] == FRAME_HOP:
            # S3PRLUpstream pads to ceil(L / hop) frames by repeating the last one; keep the CNN's
            # own count, as every other backend and the students do.
            n = cnn_frames(lengths.to(wavs.device))
            hs = [h[:, : int(n.max())] for h in hs]
        mask = lengths_to_mask(n, hs[0].shape[1])
        logits = None
        if self._head is not None:
            z = F.normalize(self._head.final_proj(hs[-1]).float(), dim=-1, eps=1e-8)
            e = F.normalize(self._head.label_embs_concat.float(), dim=-1, eps=1e-8)
            logits = z @ e.T / self.logit_temp
        return TeacherOutput(list(hs), mask, logits)


def _is_url(path_or_url: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", str(path_or_url)) is not None


def local_or_http(path_or_url: str) -> str:
    """``path_or_url`` as s3prl takes it: a local path (a ``file://`` URL becomes its path) or an
    http(s) URL; any other scheme is a TeacherError."""
    from urllib.parse import unquote, urlparse

    if not _is_url(path_or_url):
        return path_or_url
    url = urlparse(path_or_url)
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise TeacherError(f"path_or_url {path_or_url}: a file:// URL of another host; copy the file here")
        return unquote(url.path)
    if url.scheme not in ("http", "https"):
        raise TeacherError(f"path_or_url {path_or_url}: scheme '{url.scheme}' is not supported; "
                           "give a local path, a file:// URL or an http(s) URL")
    return path_or_url


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """Inside the block every ``torch.load`` reads weights only (``weights_only=True``), whatever
    its caller passes: s3prl's loaders ask for ``weights_only=False`` (full unpickling, which runs
    whatever code a file carries). A file holding other objects then fails with
    ``pickle.UnpicklingError`` instead of being executed."""
    original = torch.load

    def load(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


@dataclass
class LocalTeacherConfig:
    """``backend: local``: a HuBERT checkpoint on disk (a file, or a Hugging Face folder), in any
    format :func:`load_hubert` reads."""

    path: str
    backend: str = "local"
    format: str = "auto"  # auto | one of teacher.checkpoints.FORMATS
    name: str | None = None  # shown in logs (default: the path)
    torchaudio_config: dict | None = None  # hints: torchaudio factory arguments for bare state dicts, normalize


def local_teacher_yaml(checkpoint: str | os.PathLike, path: str | os.PathLike, fmt: str = "auto") -> None:
    """Write the teacher YAML that names ``checkpoint`` by its absolute path (and its format unless
    ``auto``): the ``teacher.yaml`` that recipe stage 2 leaves for every later stage."""
    import yaml

    conf = {"backend": "local", "path": str(Path(checkpoint).resolve())}
    if fmt != "auto":
        conf["format"] = fmt
    Path(path).write_text(yaml.safe_dump(conf))


@dataclass
class S3PRLTeacherConfig:
    """``backend: s3prl``: an s3prl upstream by name (its checkpoint from the hub or ``path_or_url``)."""

    name: str
    backend: str = "s3prl"
    path_or_url: str | None = None  # a local file is read weights-only
    refresh: bool = False


def _local(cfg: LocalTeacherConfig) -> Teacher:
    model, meta = load_hubert(cfg.path, cfg.format, hints=cfg.torchaudio_config)
    return HubertTeacher(model, name=cfg.name or str(cfg.path), layout=meta.get("layout", meta["format"]))


def _s3prl(cfg: S3PRLTeacherConfig) -> Teacher:
    return S3PRLTeacher(cfg.name, cfg.path_or_url, cfg.refresh)


# backend -> (its config, how to build it)
BACKENDS: dict[str, tuple[type, Callable]] = {
    "local": (LocalTeacherConfig, _local),
    "s3prl": (S3PRLTeacherConfig, _s3prl),
}
DEFAULT_BACKEND = "local"


def teacher_config(conf: dict) -> LocalTeacherConfig | S3PRLTeacherConfig:
    """The typed config of a ``conf/teacher/*.yaml`` mapping (key ``backend``, default local)."""
    conf = dict(conf or {})
    backend = conf.setdefault("backend", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise TeacherError(f"unknown teacher backend '{backend}'; choose one of {sorted(BACKENDS)}")
    cls = BACKENDS[backend][0]
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(conf) - set(names))
    if unknown:
        raise TeacherError(f"unknown keys {unknown} for backend '{backend}'; valid: {sorted(names)}")
    missing = [f.name for f in fields(cls)
               if f.default is MISSING and f.default_factory is MISSING and f.name not in conf]
    if missing:
        raise TeacherError(f"teacher config with backend '{backend}' needs '{missing[0]}'")
    try:
        return from_dict(cls, conf, "teacher")
    except ConfigError as e:
        raise TeacherError(str(e)) from None


def build_teacher(conf: dict) -> Teacher:
    """Build a frozen teacher from a ``conf/teacher/*.yaml`` mapping (key ``backend``)."""
    cfg = teacher_config(conf)
    teacher = BACKENDS[cfg.backend][1](cfg)
    logger.info("teacher '%s': %d layers x %d, codebook: %s", teacher.name, teacher.num_layers, teacher.dim,
                "yes" if teacher.has_codebook else "no")
    return teacher
