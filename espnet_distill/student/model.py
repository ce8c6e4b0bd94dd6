"""A student: front-end + transformer encoder + prediction heads + L_disc head.

    student = Student(StudentConfig(...))
    out = student(wav, lengths)
    out.hidden       # 1 + num_layers of (B, T, D); hidden[0] is the input to layer 1
    out.mask         # (B, T) valid frames
    out.preds        # {teacher_layer: (B, T, D_T)} from the prediction heads
    out.disc_logits  # (B, T, C) from the L_disc head, or None

``hidden`` is what downstream tasks (ESPnet ASR) use; the heads exist for distillation only.
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from espnet_distill.config import check_range, from_dict
from espnet_distill.nn.hubert import SelfAttention, TransformerEncoder
from espnet_distill.student.frontend import FRONTENDS
from espnet_distill.student.heads import build_disc_head, build_pred_head

logger = logging.getLogger(__name__)


def bert_init(encoder: nn.Module) -> None:
    """fairseq's ``init_bert_params`` over ``encoder`` (what the authors' fork applies to its
    TransformerEncoder, docs/fidelity.md): every Linear N(0, 0.02) with a zero bias, then each
    attention block's q, k and v weights drawn again from N(0, 0.02), in ``nn.Module.apply`` order."""
    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.data.zero_()
        if isinstance(module, SelfAttention):
            for proj in (module.q_proj, module.k_proj, module.v_proj):
                proj.weight.data.normal_(0.0, 0.02)

    encoder.apply(init)


# StudentConfig.encoder_init: how the transformer's layers start before init: copies any ("pytorch":
# nn.Linear's own uniform init)
ENCODER_INITS = {"pytorch": lambda encoder: None, "bert": bert_init}


@dataclass
class StudentConfig:
    frontend: str = "cnn"  # FRONTENDS key: cnn | fbank
    # cnn: conv_layers, extractor_mode, layer_norm; fbank: num_mel_bins, dropout, proj_init
    frontend_conf: dict = field(default_factory=dict)
    dim: int = 480
    ffn_dim: int = 480
    num_layers: int = 12
    num_heads: int = 12
    conv_pos: int = 128
    conv_pos_groups: int = 16
    layer_norm_first: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1
    encoder_init: str = "pytorch"  # ENCODER_INITS key: pytorch | bert (the authors' fork: init_bert_params)
    pred_head: str = "layer-wise"  # expand-last | layer-wise
    pred_targets: list | None = None  # expand-last: teacher layers, e.g. [4, 8, 12]
    layer_map: dict | None = None  # layer-wise: {student layer: teacher layer}; default i -> i
    pred_inter_dim: int = 0  # expand-last hidden size (0 = dim)
    disc_head: str | None = "type2"  # a DISC_HEADS key (type1 | type2 | type3 | type3_cosine) or None: no L_disc
    teacher_dim: int = 768
    teacher_layers: int = 12
    num_classes: int = 504
    codebook_dim: int = 256
    tau: float = 0.1
    # pruned students (student/pruning.py): sizes per layer, which override ffn_dim and num_heads
    layer_ffn_dims: list | None = None  # FFN units of each layer (0: the layer has no FFN)
    layer_heads: list | None = None  # attention heads of each layer (0: the layer has no attention)
    head_dim: int = 0  # width of one head (0: dim // num_heads)

    def __post_init__(self) -> None:
        w = "student"
        check_range(w, "frontend", self.frontend, self.frontend in FRONTENDS, " or ".join(sorted(FRONTENDS)))
        check_range(w, "encoder_init", self.encoder_init, self.encoder_init in ENCODER_INITS,
                    " or ".join(sorted(ENCODER_INITS)))
        for key in ("dim", "ffn_dim", "num_layers", "num_heads"):
            check_range(w, key, getattr(self, key), getattr(self, key) >= 1, "at least 1")
        if self.head_dim == 0:
            check_range(w, "num_heads", self.num_heads, self.dim % self.num_heads == 0, f"a divisor of dim {self.dim}")
        check_range(w, "head_dim", self.head_dim, self.head_dim >= 0, "0 (dim // num_heads) or a width")
        for key in ("layer_ffn_dims", "layer_heads"):
            sizes = getattr(self, key)
            check_range(w, key, sizes, sizes is None or (len(sizes) == self.num_layers and all(
                isinstance(n, int) and n >= 0 for n in sizes)), f"one size of 0 or more per layer ({self.num_layers})")
        check_range(w, "head_dim", self.head_dim, self.layer_heads is None or self.head_dim > 0,
                    "the width of a head when layer_heads is given")
        for key in ("dropout", "attention_dropout", "activation_dropout"):
            check_range(w, key, getattr(self, key), 0 <= getattr(self, key) < 1, "a probability in [0, 1)")
        check_range(w, "frontend_conf", self.frontend_conf, isinstance(self.frontend_conf, dict),
                    "a mapping of the front-end's options")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudentConfig":
        return from_dict(cls, d, "student config")


@dataclass
class StudentOutput:
    hidden: list[torch.Tensor]
    mask: torch.Tensor
    preds: dict[int, torch.Tensor]
    disc_logits: torch.Tensor | None


class Student(nn.Module):
    def __init__(self, cfg: StudentConfig, label_embs: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        try:
            self.frontend = FRONTENDS[cfg.frontend](dim=cfg.dim, **cfg.frontend_conf)
        except (TypeError, ValueError) as e:  # an unknown key or value: say which front-end's options
            raise ValueError(f"student.frontend_conf: {e} (the options of the '{cfg.frontend}' front-end)") from None
        self.encoder = TransformerEncoder(cfg.dim, cfg.layer_ffn_dims or cfg.ffn_dim, cfg.num_layers,
                                          cfg.layer_heads or cfg.num_heads, cfg.conv_pos, cfg.conv_pos_groups,
                                          cfg.dropout, cfg.attention_dropout, cfg.activation_dropout,
                                          cfg.layer_norm_first, head_dim=cfg.head_dim or None)
        ENCODER_INITS[cfg.encoder_init](self.encoder)
        self.pred_head = build_pred_head(cfg.pred_head, cfg.dim, cfg.teacher_dim, cfg.num_layers, cfg.teacher_layers,
                                         cfg.pred_targets, cfg.layer_map, cfg.pred_inter_dim)
        self.disc_head = None
        if cfg.disc_head:
            embs = label_embs if label_embs is not None else torch.zeros(cfg.num_classes, cfg.codebook_dim)
            self.disc_head = build_disc_head(cfg.disc_head, cfg.dim, embs, cfg.tau)
        # front-end adaptation (fbank): Linear(D -> D_T) to the teacher's layer-0 input
        self.fe_head = nn.Linear(cfg.dim, cfg.teacher_dim) if cfg.frontend == "fbank" else None

    # ------------------------------------------------------------------ forward passes
    def features(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The front-end's (B, T, D) output, the input of the transformer, and the frame mask."""
        return self.frontend(wav, lengths)

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor, num_layers: int | None = None):
        """Hidden states (1 + layers of (B, T, D)) and frame mask: what downstream tasks use."""
        x, mask = self.features(wav, lengths)
        return self.encoder(x, mask, num_layers), mask

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> StudentOutput:
        hidden, mask = self.encode(wav, lengths)
        preds = self.pred_head(hidden)
        disc = self.disc_head(hidden[-1]) if self.disc_head is not None else None
        return StudentOutput(hidden, mask, preds, disc)

    def frontend_adapt(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Front-end adaptation: Linear(front-end output) -> (B, T, D_T), to match the teacher's hidden[0]."""
        if self.fe_head is None:
            raise ValueError("front-end adaptation is for the fbank front-end; "
                             f"this student uses '{self.cfg.frontend}'")
        x, mask = self.frontend(wav, lengths)
        return self.fe_head(x), mask

    def frontend_parameters(self) -> list[nn.Parameter]:
        """What learns during front-end adaptation: the front-end and its Linear head."""
        return list(self.frontend.parameters()) + (list(self.fe_head.parameters()) if self.fe_head is not None else [])

    # ------------------------------------------------------------------ bookkeeping
    def param_counts(self) -> dict[str, int]:
        """Parameters of the front-end, the encoder, and the distillation heads (dropped after distillation)."""
        def n(m):
            return sum(p.numel() for p in m.parameters()) if m is not None else 0

        heads = n(self.pred_head) + n(self.disc_head) + n(self.fe_head)
        return {"frontend": n(self.frontend), "encoder": n(self.encoder), "heads": heads,
                "total_without_heads": n(self.frontend) + n(self.encoder)}


# ---------------------------------------------------------------------------- init from teacher

_TEACHER_TO_STUDENT = [
    (r"^feature_extractor\.", "frontend.feature_extractor."),
    (r"^layer_norm\.", "frontend.layer_norm."),
    (r"^post_extract_proj\.", "frontend.post_extract_proj."),
    (r"^encoder\.pos_conv\.", "encoder.pos_conv."),
    (r"^encoder\.layer_norm\.", "encoder.layer_norm."),
]


def init_from_teacher(student: Student, teacher_state: dict[str, torch.Tensor], frontend: bool = True,
                      pos_conv: bool = True, layers: dict[int, int] | None = None,
                      encoder_layer_norm: bool = True) -> dict[str, list[str]]:
    """Copy teacher weights (fairseq names) into the student wherever the shapes match.

    ``frontend``: CNN, its LayerNorm and projection; ``pos_conv``: positional conv, and the encoder
    LayerNorm unless ``encoder_layer_norm`` is false; ``layers``: {student layer: teacher layer}
    (1-based). Returns what was copied and skipped.
    """
    own = student.state_dict()
    copied, skipped = [], []
    wanted: dict[str, str] = {}
    for k in teacher_state:
        for pat, rep in _TEACHER_TO_STUDENT:
            if re.match(pat, k):
                is_fe = not k.startswith("encoder.")
                if k.startswith("encoder.layer_norm.") and not encoder_layer_norm:
                    continue
                if (is_fe and frontend) or (not is_fe and pos_conv):
                    wanted[re.sub(pat, rep, k)] = k
        m = re.match(r"^encoder\.layers\.(\d+)\.(.*)$", k)
        if m and layers:
            for s, t in layers.items():
                if int(t) - 1 == int(m.group(1)):
                    wanted[f"encoder.layers.{int(s) - 1}.{m.group(2)}"] = k
    new = dict(own)
    for dst, src in wanted.items():
        if dst in own and own[dst].shape == teacher_state[src].shape:
            new[dst] = teacher_state[src].detach().clone()
            copied.append(dst)
        else:
            skipped.append(dst)
    student.load_state_dict(new)
    logger.info("init from teacher: copied %d tensors, skipped %d (shape or name mismatch)", len(copied), len(skipped))
    if skipped:
        logger.info("not copied: %s", skipped[:10])
    return {"copied": copied, "skipped": skipped}
