"""ESPnet glue: our students (and teachers) as a trainable ESPnet frontend, and a pass-through
encoder for whole-model ("unconstrained") fine-tuning.

    frontend: distilled
    frontend_conf:
        checkpoint: exp/distill/dt_cnn/student.pt   # a student of ours, or any HuBERT checkpoint we read
        layer: last            # "last", "weighted" (learned softmax-weighted sum of all layers), or an int
        freeze_steps: 0        # keep the frontend frozen for the first N training forward passes
        frozen: false          # frozen for the whole run, in eval mode (SUPERB's protocol; the layer weights
                               # of ``layer: weighted`` still learn)
        mask_time_prob: 0.05   # SpecAugment the way HuBERT fine-tuning does: on the features entering
        mask_time_length: 10   # the transformer (time spans -> a learned mask embedding; channel
        mask_channel_prob: 0.0 # spans -> 0), never ESPnet's ``specaug`` on the frontend's output
        mask_channel_length: 10
        eq_max_db: 0.0         # random equalisation of each training utterance (a smooth filter of eq_anchors
        eq_anchors: 6          # gains in [-eq_max_db, eq_max_db] dB on the mel scale): microphone colouring
        crop_max_ms: 0         # cut 0..crop_max_ms off each end of each training utterance (at most a fifth
                               # of it at each end): words trimmed into by endpointing
        onset_trim_prob: 0.0   # start a training utterance at its first voiced frame (unvoiced onset cut)
        mask_time_min_spans: 1 # time-mask spans each training utterance gets at least (fairseq: 2)
        feature_grad_mult: 1.0 # gradient scale of the front-end's feature extractor (0: frozen; fairseq: 0)
        layerdrop: 0.0         # probability of skipping each transformer layer in training (fairseq: 0.1)
        dropout: null          # the dropouts for fine-tuning (null: as distilled; fairseq's HuBERT
        attention_dropout: null  # fine-tuning: 0, 0 and 0.1); dropout also on the front-end's output
        activation_dropout: null
        reuse_mask_emb: false  # time masks start from the pretrained mask embedding: a HuBERT teacher's, or
                               # for a student its teacher's (kept in student.pt), as the authors fine-tune
    encoder: passthrough       # the frontend already is the encoder
    encoder_conf: {output_size: 0, dropout: 0.1}

Distillation heads (prediction and L_disc heads) are dropped: only the front-end and the
transformer layers are kept and fine-tuned. A frozen frontend runs without autograd, also
under DistributedDataParallel (the recipe passes ``--unused_parameters true`` there), so that
AdamW's step count and moments of its parameters start when it is unfrozen; zero gradients
instead would advance the step count and make the first updates after unfreezing several
times too large. ESPnet's ``init:`` re-initialises every parameter; it then calls
:meth:`DistilledFrontend.reload_pretrained_parameters`, which loads the distilled weights again.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from torch import nn

from espnet_distill.checkpoint_io import CheckpointError, safe_load
from espnet_distill.data.audio import SAMPLE_RATE
from espnet_distill.nn.augment import random_crop, random_equalize, random_onset_trim
from espnet_distill.nn.hubert import HubertConfig, HubertModel, check_grad_scale
from espnet_distill.nn.masking import FeatureMasking
from espnet_distill.student.export import STUDENT_FORMAT, load_student
from espnet_distill.teacher.checkpoints import load_hubert

logger = logging.getLogger(__name__)


class _HubertAsUpstream(nn.Module):
    """A HuBERT (teacher) with the student interface ``encode(wav, lengths) -> (hidden, mask)``."""

    def __init__(self, model: HubertModel):
        super().__init__()
        self.model = model
        self.model.final_proj = None  # pretraining head: not needed downstream
        if model.has_codebook:
            del self.model.label_embs_concat
            self.model.cfg.num_classes = 0
        self.dim, self.num_layers = model.cfg.embed_dim, model.cfg.num_layers

    def encode(self, wav, lengths):
        return self.model(wav, lengths)

    def features(self, wav, lengths):
        return self.model.features(wav, lengths)

    def encoder(self, x, mask):
        return self.model.encoder(x, mask)


def _as_upstream(model: nn.Module, kind: str) -> tuple[nn.Module, int, int, str]:
    """A student without its distillation heads, or a HuBERT teacher without its pretraining head,
    with the interface the frontend uses: (module, dim, layers, kind)."""
    if kind == "student":
        model.pred_head = None  # distillation heads are dropped
        model.disc_head = None
        model.fe_head = None
        return model, model.cfg.dim, model.cfg.num_layers, "student"
    up = _HubertAsUpstream(model)
    return up, up.dim, up.num_layers, "teacher"


def feature_extractor_and_transformer(upstream: nn.Module, kind: str) -> tuple[nn.Module, nn.Module]:
    """The module whose ``grad_mult`` scales the feature extractor's gradient (a student's front-end,
    or a teacher's CNN), and the transformer (its ``layerdrop``), of an upstream of ``kind``."""
    if kind == "student":
        return upstream.frontend, upstream.encoder
    return upstream.model.feature_extractor, upstream.model.encoder


def set_input_dropout(upstream: nn.Module, kind: str, p: float) -> None:
    """The dropout on the front-end's output (a student's front-end, a teacher's ``dropout_input``)."""
    if kind == "student":
        upstream.frontend.dropout = float(p)
    else:
        upstream.model.cfg.dropout_input = float(p)


def pretrained_mask_emb(upstream: nn.Module, kind: str) -> torch.Tensor | None:
    """The (D,) pretrained mask embedding of an upstream of ``kind``, or None: a HuBERT teacher's own,
    a student's teacher's (kept in the student file, :func:`~espnet_distill.train.distill.with_teacher_mask_emb`)."""
    if kind == "student":
        return getattr(upstream, "teacher_mask_emb", None)
    return upstream.model.mask_emb


def describe_upstream(checkpoint: str | Path) -> dict:
    """The architecture of a frontend checkpoint, ``{"kind": "student" | "teacher", "config": {...}}``:
    enough to rebuild the frontend without the file (the fine-tuned ESPnet model holds the weights)."""
    path = Path(checkpoint)
    ckpt = safe_load(path)
    if ckpt.get("format") == STUDENT_FORMAT:
        return {"kind": "student", "config": dict(ckpt["config"])}
    model, _ = load_hubert(path)
    return {"kind": "teacher", "config": model.cfg.to_dict()}


def described_dim(upstream: dict) -> int:
    """The output width of the frontend :func:`describe_upstream` described."""
    config = upstream["config"]
    return int(config["dim"] if upstream["kind"] == "student" else config["embed_dim"])


def build_upstream(upstream: dict) -> tuple[nn.Module, int, int, str]:
    """An upstream of the architecture ``describe_upstream`` gave, with untrained weights."""
    from espnet_distill.student.model import Student, StudentConfig

    kind = upstream.get("kind")
    if kind == "student":
        return _as_upstream(Student(StudentConfig.from_dict(upstream["config"])).eval(), "student")
    if kind == "teacher":
        return _as_upstream(HubertModel(HubertConfig.from_dict(upstream["config"])).eval(), "teacher")
    raise CheckpointError(f"frontend_conf.upstream: unknown kind {kind!r} (student or teacher)")


def load_upstream(checkpoint: str | Path) -> tuple[nn.Module, int, int, str]:
    """Our student or any HuBERT checkpoint -> (module with encode(), dim, layers, kind)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"frontend checkpoint {path} does not exist")
    ckpt = safe_load(path)
    if ckpt.get("format") == STUDENT_FORMAT:
        student, meta = load_student(path)
        student.teacher_mask_emb = meta.get("teacher_mask_emb")  # a plain attribute: not a weight of the model
        return _as_upstream(student, "student")
    try:
        model, _ = load_hubert(path)
    except CheckpointError as e:
        raise CheckpointError(f"frontend checkpoint {path} is neither an espnet_distill student nor a HuBERT "
                              f"checkpoint we read: {e}") from None
    return _as_upstream(model, "teacher")


class DistilledFrontend(AbsFrontend):
    """A distilled student (or a teacher) as a trainable ESPnet frontend: waveform -> (B, T, D)."""

    def __init__(self, checkpoint: str = "", layer: str | int = "last", freeze_steps: int = 0, fs: int = SAMPLE_RATE,
                 mask_time_prob: float = 0.0, mask_time_length: int = 10, mask_channel_prob: float = 0.0,
                 mask_channel_length: int = 10, upstream: dict | None = None, eq_max_db: float = 0.0,
                 eq_anchors: int = 6, crop_max_ms: float = 0.0, mask_time_min_spans: int = 1,
                 onset_trim_prob: float = 0.0, feature_grad_mult: float | None = None, layerdrop: float | None = None,
                 dropout: float | None = None, attention_dropout: float | None = None,
                 activation_dropout: float | None = None, reuse_mask_emb: bool = False, frozen: bool = False):
        """``checkpoint``: the student (or teacher) to start from. ``upstream``: its architecture
        (``describe_upstream``; ``asr_train`` records it in config.yaml), used when the checkpoint
        file is not there: a fine-tuned model moved or unpacked elsewhere has its weights in its own
        model file and needs only the architecture. ``eq_max_db`` > 0: in training, each waveform
        is filtered by its own random smooth filter (:func:`espnet_distill.nn.augment.random_equalize`);
        ``crop_max_ms`` > 0: in training, random cuts off both ends (:func:`~espnet_distill.nn.augment.random_crop`).
        ``onset_trim_prob`` > 0: in training, that share of the utterances start at their first voiced
        frame (:func:`~espnet_distill.nn.augment.random_onset_trim`).
        ``mask_time_min_spans``: time-mask spans each training utterance gets at least (fairseq's
        fine-tuning: 2; 0 for sub-second utterances, where one span is far more than ``mask_time_prob``).
        ``feature_grad_mult``: gradient scale of the front-end's feature extractor (the waveform CNN, or
        the fbank front-end's Conv1d + GLU; 0: frozen throughout; None: as the checkpoint was distilled).
        ``layerdrop``: each transformer layer is skipped with this probability in training (None: as
        distilled). ``dropout``, ``attention_dropout``, ``activation_dropout``: the transformer's
        (:meth:`~espnet_distill.nn.hubert.TransformerEncoder.set_dropouts`; None: as distilled);
        ``dropout`` also on the front-end's output (:func:`set_input_dropout`).
        ``reuse_mask_emb``: the time masks' embedding starts from the pretrained ``mask_emb``
        (:func:`pretrained_mask_emb`: a HuBERT teacher's, a student's teacher's) where there is one.
        ``frozen``: the upstream is never trained: no gradients (``requires_grad`` off, so ESPnet
        counts it as frozen), and in eval mode also while the model trains (no dropout or layer
        drop), as s3prl runs a frozen upstream for SUPERB; ``layer_weights`` still learn."""
        super().__init__()
        if isinstance(fs, str):  # ESPnet style "16k"
            fs = int(float(fs[:-1]) * 1000) if fs.lower().endswith("k") else int(fs)
        if int(fs) != SAMPLE_RATE:
            raise ValueError(f"the distilled frontend takes 16 kHz audio, got fs={fs}")
        if checkpoint and Path(checkpoint).is_file():
            self.upstream, self.dim, self.num_layers, self.kind = load_upstream(checkpoint)
        elif upstream:
            self.upstream, self.dim, self.num_layers, self.kind = build_upstream(upstream)
        else:
            raise CheckpointError(f"frontend checkpoint {checkpoint!r} does not exist, and frontend_conf has no "
                                  "'upstream' architecture to rebuild it from")
        self.upstream_description = upstream
        self.checkpoint = str(checkpoint)
        if layer not in ("last", "weighted") and not (isinstance(layer, int) and 0 <= layer <= self.num_layers):
            raise ValueError(f"layer must be 'last', 'weighted' or an int in 0..{self.num_layers}, got {layer!r}")
        self.layer = layer
        self.layer_weights = nn.Parameter(torch.zeros(self.num_layers + 1)) if layer == "weighted" else None
        self.freeze_steps = int(freeze_steps)
        self.frozen = bool(frozen)
        if self.frozen:
            self.upstream.requires_grad_(False)
            self.upstream.eval()
        extractor, transformer = feature_extractor_and_transformer(self.upstream, self.kind)
        if feature_grad_mult is not None:
            extractor.grad_mult = check_grad_scale(feature_grad_mult)
        transformer.set_dropouts(dropout, attention_dropout, activation_dropout, layerdrop)
        if dropout is not None:  # fairseq's fine-tuning sets dropout_input with the others (to 0)
            set_input_dropout(self.upstream, self.kind, dropout)
        self.masking = FeatureMasking(self.dim, mask_time_prob, mask_time_length, mask_channel_prob,
                                      mask_channel_length, mask_time_min_spans)
        self.reuse_mask_emb = bool(reuse_mask_emb)
        self._reuse_mask_emb(self.upstream)
        if eq_max_db < 0 or int(eq_anchors) < 2 or crop_max_ms < 0:
            raise ValueError(f"eq_max_db and crop_max_ms must be >= 0 and eq_anchors >= 2, got {eq_max_db}, "
                             f"{crop_max_ms} and {eq_anchors}")
        if not 0.0 <= onset_trim_prob <= 1.0:
            raise ValueError(f"onset_trim_prob must be in [0, 1], got {onset_trim_prob}")
        self.onset_trim_prob = float(onset_trim_prob)
        self.eq_max_db, self.eq_anchors = float(eq_max_db), int(eq_anchors)
        self.crop_max_samples = round(crop_max_ms * SAMPLE_RATE / 1000)
        self.register_buffer("forward_count", torch.zeros((), dtype=torch.long))
        logger.info("distilled frontend: %s (%s, %d layers x %d), layer=%s, frozen for %s, masks: time %.2f x %d "
                    "(>= %d spans), channel %.2f x %d, random equalisation +-%.1f dB, random crops up to %g ms, "
                    "onsets trimmed to voicing in %.0f %%, feature gradient x %g, layer drop %g", checkpoint, self.kind,
                    self.num_layers, self.dim, layer, "the whole run" if self.frozen else f"{self.freeze_steps} steps",
                    mask_time_prob, mask_time_length,
                    mask_time_min_spans, mask_channel_prob, mask_channel_length, self.eq_max_db, crop_max_ms,
                    100 * self.onset_trim_prob, extractor.grad_mult, transformer.layerdrop)

    def output_size(self) -> int:
        return self.dim

    def train(self, mode: bool = True) -> "DistilledFrontend":
        super().train(mode)
        if self.frozen:  # a frozen upstream stays in eval mode (ESPnet calls model.train() every epoch)
            self.upstream.eval()
        return self

    def reload_pretrained_parameters(self) -> None:
        """Load the checkpoint's weights into the upstream again (ESPnet calls this after ``init:``
        has re-initialised every parameter)."""
        if not Path(self.checkpoint).is_file():
            logger.warning("distilled frontend: %s is not there; nothing to reload after initialisation",
                           self.checkpoint)
            return
        fresh, _, _, _ = load_upstream(self.checkpoint)
        self.upstream.load_state_dict(fresh.state_dict())
        self._reuse_mask_emb(fresh)
        logger.info("distilled frontend: reloaded the weights of %s after initialisation", self.checkpoint)

    def _reuse_mask_emb(self, upstream: nn.Module) -> None:
        """Under ``reuse_mask_emb``, copy ``upstream``'s pretrained mask embedding into the time masks'."""
        if not self.reuse_mask_emb or self.masking.mask_emb is None:
            return
        pretrained = pretrained_mask_emb(upstream, self.kind)
        if pretrained is None:
            logger.info("distilled frontend: the %s has no pretrained mask embedding (a student distilled from a "
                        "teacher without one, or before espnet_distill kept it); the time masks learn a new one",
                        self.kind)
            return
        with torch.no_grad():
            self.masking.mask_emb.copy_(pretrained)

    def _select(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        if self.layer == "last":
            return hidden[-1]
        if self.layer == "weighted":
            w = F.softmax(self.layer_weights, dim=0)
            return sum(wi * h for wi, h in zip(w, hidden))
        return hidden[int(self.layer)]

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frozen = self.frozen or (self.training and int(self.forward_count) < self.freeze_steps)
        if self.training:
            self.forward_count += 1
        wav, lengths = input.float(), input_lengths
        if self.training:
            wav, lengths = random_onset_trim(wav, lengths, self.onset_trim_prob)
            wav, lengths = random_crop(wav, lengths, self.crop_max_samples)
            wav = random_equalize(wav, lengths, self.eq_max_db, self.eq_anchors)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            x, mask = self.upstream.features(wav, lengths)
            x = self.masking(x, mask)
            hidden = self.upstream.encoder(x, mask)
        feats = self._select(hidden)
        return feats, mask.sum(1)


class PassThroughEncoder(AbsEncoder):
    """The encoder slot for whole-model fine-tuning: optional Linear(D -> output_size) + dropout."""

    def __init__(self, input_size: int, output_size: int = 0, dropout: float = 0.0):
        super().__init__()
        self._out = output_size if output_size > 0 else input_size
        self.proj = nn.Linear(input_size, output_size) if output_size > 0 else None
        self.dropout = nn.Dropout(dropout)

    def output_size(self) -> int:
        return self._out

    def forward(self, xs_pad, ilens, prev_states=None):
        x = self.dropout(xs_pad)
        if self.proj is not None:
            x = self.proj(x)
        return x, ilens, None
