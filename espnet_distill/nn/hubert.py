"""HuBERT's architecture with fairseq parameter names (so released and s3prl-converted
checkpoints load without renaming), used by teachers and by the CNN students. With
``relative_position_embedding`` it is WavLM's (unilm parameter names): every layer adds a
bucketed relative position bias, whose table lives in the first layer, gated per head by the
layer's input.

Shapes: B batch, L samples, T frames (20 ms at 16 kHz with the default CNN), D model width.
Masks are boolean and True on *valid* positions.

Differences from fairseq, both on padding only: the first layer's GroupNorm takes its
statistics over valid frames, and padded frames are zeroed after every CNN layer, so an
utterance gives the same hidden states alone and padded inside a batch.
"""
from __future__ import annotations

import ast
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from espnet_distill.config import from_dict

DEFAULT_CONV = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2


@dataclass
class HubertConfig:
    """Architecture hyper-parameters (defaults: HuBERT Base)."""

    conv_layers: list = field(default_factory=lambda: [list(c) for c in DEFAULT_CONV])  # [dim, kernel, stride]
    conv_bias: bool = False
    extractor_mode: str = "default"  # "default": GroupNorm after the first conv; "layer_norm": LN after each
    embed_dim: int = 768
    ffn_dim: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    conv_pos: int = 128
    conv_pos_groups: int = 16
    layer_norm_first: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    layerdrop: float = 0.0
    final_dim: int = 256  # 0: no prediction head
    num_classes: int = 504  # rows of label_embs_concat; 0: no codebook
    logit_temp: float = 0.1
    normalize: bool = False  # zero-mean unit-variance waveform (HuBERT Large)
    relative_position_embedding: bool = False  # WavLM: a bucketed relative position bias in every layer
    num_buckets: int = 320  # WavLM: buckets of the relative position table
    max_distance: int = 800  # WavLM: offsets at and beyond this share the last bucket
    gru_rel_pos: bool = True  # WavLM: the bias is gated per head by the layer's input

    @property
    def rel_pos(self) -> dict | None:
        """The relative position options of :class:`TransformerEncoder` (None: HuBERT)."""
        if not self.relative_position_embedding:
            return None
        return {"num_buckets": self.num_buckets, "max_distance": self.max_distance, "gated": self.gru_rel_pos}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HubertConfig":
        return from_dict(cls, d, "HubertConfig")

    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @property
    def receptive_field(self) -> int:
        """Samples needed for one output frame (400 for HuBERT's CNN)."""
        rf = 1
        for _, k, s in reversed(self.conv_layers):
            rf = (rf - 1) * s + k
        return rf

    @property
    def hop(self) -> int:
        return math.prod(s for _, _, s in self.conv_layers)


def parse_conv_spec(spec: str) -> list[list[int]]:
    """Parse fairseq's ``conv_feature_layers`` string, e.g.
    ``"[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"``, without ``eval``:
    only list/tuple literals of ints, ``+`` and ``* int`` are allowed."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return ev(node.left) + ev(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return ev(node.left) * ev(node.right)
        raise ValueError(f"unsupported element in conv spec {spec!r}: {ast.dump(node)[:60]}")

    out = ev(ast.parse(spec, mode="eval"))
    if not all(isinstance(t, list) and len(t) == 3 for t in out):
        raise ValueError(f"conv spec {spec!r} must be a list of (dim, kernel, stride)")
    return [list(t) for t in out]


def conv_output_lengths(lengths: torch.Tensor, conv_layers: list) -> torch.Tensor:
    """Frames after the CNN: per layer floor((L - k) / s) + 1 (clamped at 0)."""
    out = lengths.clone()
    for _, k, s in conv_layers:
        out = torch.div(out - k, s, rounding_mode="floor") + 1
        out = out.clamp(min=0)
    return out


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True on valid positions. ``max_len`` is T (a tensor's
    size; kept as given, so that a traced export keeps T dynamic), else the longest length."""
    t = max_len if max_len is not None else int(lengths.max())
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def unpadded(lengths: torch.Tensor, width: int) -> bool:
    """True when every one of (B,) ``lengths`` fills the batch ``width``: masks can be left out
    (flash attention needs none). Always False while tracing, exporting or compiling, whose graphs
    must hold for any lengths. Reads the lengths from the device once."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    return bool((lengths == width).all())


def masked_group_norm(x: torch.Tensor, mask: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """Per-channel GroupNorm (groups == channels) over valid frames only.

    x: (B, C, T); mask: (B, T). Equals ``norm(x)`` when nothing is padded.
    """
    # statistics in fp32 (also under fp16 autocast) with two matrix-vector products over time,
    # then one fused scale-and-shift: fewer passes over the largest tensor of the model
    xf = x.float()
    m = mask.to(xf.dtype)[:, :, None]  # (B, T, 1)
    n = m.sum(1, keepdim=True).clamp(min=1)  # (B, 1, 1)
    mean = torch.bmm(xf, m) / n  # (B, C, 1)
    var = ((torch.bmm(xf * xf, m) / n) - mean * mean).clamp(min=0)
    scale = torch.rsqrt(var + norm.eps) * norm.weight.float()[None, :, None]
    shift = norm.bias.float()[None, :, None] - mean * scale
    return (torch.addcmul(shift, xf, scale) * m.transpose(1, 2)).to(x.dtype)


class TransposedLayerNorm(nn.Module):
    """LayerNorm over channels of a (B, C, T) tensor (fairseq's TransposeLast-LN-TransposeLast);
    stored as ``.1`` to keep fairseq's key names."""

    def __init__(self, dim: int):
        super().__init__()
        self.add_module("1", nn.LayerNorm(dim))

    def forward(self, x):
        return getattr(self, "1")(x.transpose(1, 2)).transpose(1, 2)


class _GradMultiply(torch.autograd.Function):
    """Identity forward; the gradient times ``scale`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scaled_gradient(module: nn.Module, scale: float, *inputs):
    """``module(*inputs)`` whose parameters get ``scale`` times their gradient (fairseq's and s3prl's
    ``feature_grad_mult``): 1 leaves it, 0 runs the module without autograd (frozen). Only the
    module's own parameters are affected: its inputs are audio, which needs no gradient."""
    if scale == 0:
        with torch.no_grad():
            return module(*inputs)
    out = module(*inputs)
    if scale == 1 or not torch.is_grad_enabled():
        return out
    if isinstance(out, tuple):
        return (_GradMultiply.apply(out[0], scale),) + tuple(out[1:])
    return _GradMultiply.apply(out, scale)


def check_grad_scale(scale: float) -> float:
    if not 0.0 <= float(scale) <= 1.0:
        raise ValueError(f"feature_grad_mult = {scale!r}: expected a gradient scale in [0, 1] (0: frozen)")
    return float(scale)


class ConvFeatureExtractor(nn.Module):
    """Waveform CNN. Keys: conv_layers.{i}.0 (Conv1d), .2 (norm, when present).

    ``grad_mult`` (an attribute, not a weight) scales the CNN's gradient: see :func:`scaled_gradient`."""

    grad_mult: float = 1.0

    def __init__(self, conv_layers: list, mode: str = "default", bias: bool = False):
        super().__init__()
        if mode not in ("default", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'default' or 'layer_norm', got {mode!r}")
        self.mode = mode
        self.spec = [list(c) for c in conv_layers]
        layers = []
        in_d = 1
        for i, (dim, k, s) in enumerate(self.spec):
            mods: list[nn.Module] = [nn.Conv1d(in_d, dim, k, stride=s, bias=bias), nn.Dropout(0.0)]
            if mode == "layer_norm":
                mods.append(TransposedLayerNorm(dim))
            elif i == 0:
                mods.append(nn.GroupNorm(dim, dim, affine=True))
            mods.append(nn.GELU())
            layers.append(nn.Sequential(*mods))
            in_d = dim
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wav: (B, L), lengths: (B,) -> features (B, C, T), frame lengths (B,)."""
        return scaled_gradient(self._convs, self.grad_mult, wav, lengths)

    def _convs(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = wav[:, None, :]
        padded = not unpadded(lengths, wav.shape[1])  # no padding: no masks to apply (one pass less per layer)
        for (_, k, s), layer in zip(self.spec, self.conv_layers):
            x = layer[0](x)
            lengths = (torch.div(lengths - k, s, rounding_mode="floor") + 1).clamp(min=0)
            if not padded:
                x = layer[1:](x)
                continue
            mask = lengths_to_mask(lengths, x.shape[-1])
            masked = False
            if len(layer) == 4:
                norm = layer[2]
                masked = isinstance(norm, nn.GroupNorm)  # zero on padded frames, and GELU(0) = 0
                x = masked_group_norm(x, mask, norm) if masked else norm(x)
            x = layer[-1](x)
            if not masked:
                x = x.mul_(mask[:, None, :].to(x.dtype))  # in place: GELU's backward needs its input only
        return x, lengths


class WeightNormConv1d(nn.Module):
    """Conv1d with weight = g * v / ||v|| (norm over all dims but 2, as fairseq's
    ``weight_norm(dim=2)``). Keys: weight_g (1, 1, K), weight_v (D, D/G, K), bias."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.kernel, self.groups = kernel, groups
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))
        std = math.sqrt(4 / (kernel * dim))
        nn.init.normal_(self.weight_v, 0, std)
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True).clone())
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        w = self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)
        if x.device.type == "cpu" and (x.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled("cpu")):
            # oneDNN's low-precision grouped conv1d gives wrong values on AVX512-BF16 CPUs (torch 2.11;
            # pytorch/pytorch#163347 is of the same family): run it in fp32, round the result
            with torch.autocast("cpu", enabled=False):
                y = F.conv1d(x.float(), w.float(), self.bias.float(), padding=self.kernel // 2, groups=self.groups)
            return y.to(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype)
        return F.conv1d(x, w, self.bias, padding=self.kernel // 2, groups=self.groups)


class PositionalConv(nn.Module):
    """HuBERT's convolutional relative position embedding: (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.kernel = kernel
        self.add_module("0", WeightNormConv1d(dim, kernel, groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = getattr(self, "0")(x.transpose(1, 2))
        if self.kernel % 2 == 0:
            y = y[..., :-1]
        return F.gelu(y).transpose(1, 2)


def relative_buckets(t: int, num_buckets: int, max_distance: int, device=None) -> torch.Tensor:
    """(T, T) WavLM bucket of key j seen from query i: half the buckets for j > i, half for j <= i;
    within a half, offsets below a quarter of the buckets have one bucket each, larger ones
    log-spaced buckets up to ``max_distance``, beyond which they share the last."""
    pos = torch.arange(t, device=device)
    rel = pos[None, :] - pos[:, None]
    half = num_buckets // 2
    exact = half // 2
    dist = rel.abs()
    far = exact + (torch.log(dist.clamp(min=1).float() / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    return (rel > 0).long() * half + torch.where(dist < exact, dist, far.clamp(max=half - 1))


class SelfAttention(nn.Module):
    """Multi-head self-attention: ``heads`` heads of ``head_dim`` (default dim // heads) each; 0 heads
    leave the output projection's bias alone (a pruned layer). ``rel_pos`` (WavLM): the options
    ``num_buckets``, ``max_distance``, ``gated``; ``table``: this layer holds the bias table
    (``relative_attention_bias``, the first layer's), which :meth:`position_bias` reads."""

    def __init__(self, dim: int, heads: int, dropout: float, head_dim: int | None = None,
                 rel_pos: dict | None = None, table: bool = False):
        super().__init__()
        if head_dim is None:
            if heads < 1 or dim % heads:
                raise ValueError(f"embed dim {dim} is not divisible by {heads} heads")
            head_dim = dim // heads
        self.heads, self.head_dim, self.dropout, self.rel_pos = heads, head_dim, dropout, rel_pos
        inner = heads * head_dim
        self.k_proj, self.v_proj, self.q_proj = (nn.Linear(dim, inner) for _ in range(3))
        self.out_proj = nn.Linear(inner, dim)
        if rel_pos is not None:
            if table:
                self.relative_attention_bias = nn.Embedding(rel_pos["num_buckets"], heads)
            if rel_pos["gated"]:  # unilm's names: a Linear over each head's slice of the input, a constant per head
                self.grep_linear = nn.Linear(dim // max(heads, 1), 8)
                self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def position_bias(self, t: int, device=None) -> torch.Tensor:
        """(H, T, T) relative position bias of a T-frame sequence, from this layer's table."""
        buckets = relative_buckets(t, self.rel_pos["num_buckets"], self.rel_pos["max_distance"], device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def _gated(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(H, T, T) bias -> (B, H, T, T): each query's row scaled by a gate in (1, 2 + c) read from
        that head's slice of the layer input x (B, T, D)."""
        if not self.rel_pos["gated"]:
            return bias[None]
        b, t, d = x.shape
        g = torch.sigmoid(self.grep_linear(x.view(b, t, self.heads, d // self.heads).transpose(1, 2))
                          .view(b, self.heads, t, 2, 4).sum(-1))  # (B, H, T, 2)
        gate = g[..., :1] * (g[..., 1:] * self.grep_a - 1.0) + 2.0  # (B, H, T, 1)
        return gate * bias[None]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, pos_bias: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D); mask: (B, T) valid keys; pos_bias: (H, T, T) (WavLM) -> (B, T, D)."""
        b, t, d = x.shape
        h = self.heads
        if h == 0:  # a new tensor, not a view of the bias (views of weights confuse module hooks)
            return torch.zeros_like(x) + self.out_proj.bias

        def split(y):
            return y.view(b, t, h, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        attn_mask = None if mask is None else mask[:, None, None, :]
        if pos_bias is not None:
            bias = self._gated(x, pos_bias).to(q.dtype)
            attn_mask = bias if mask is None else bias.masked_fill(~attn_mask, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, h * self.head_dim))


class TransformerLayer(nn.Module):
    """fairseq TransformerSentenceEncoderLayer (post-LN unless ``layer_norm_first``)."""

    def __init__(self, dim: int, ffn: int, heads: int, dropout: float, attn_dropout: float, act_dropout: float,
                 layer_norm_first: bool, head_dim: int | None = None, rel_pos: dict | None = None,
                 table: bool = False):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads, attn_dropout, head_dim, rel_pos, table)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout, self.act_dropout, self.layer_norm_first = dropout, act_dropout, layer_norm_first

    def _ffn(self, x):
        if self.fc1.out_features == 0:  # a pruned layer: fc2's bias alone
            return F.dropout(torch.zeros_like(x) + self.fc2.bias, self.dropout, self.training)
        y = F.dropout(F.gelu(self.fc1(x)), self.act_dropout, self.training)
        return F.dropout(self.fc2(y), self.dropout, self.training)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, pos_bias: torch.Tensor | None = None) -> torch.Tensor:
        if self.layer_norm_first:
            y = self.self_attn(self.self_attn_layer_norm(x), mask, pos_bias)
            x = x + F.dropout(y, self.dropout, self.training)
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x + F.dropout(self.self_attn(x, mask, pos_bias), self.dropout, self.training))
        return self.final_layer_norm(x + self._ffn(x))


def per_layer(value: int | list, layers: int, what: str) -> list[int]:
    """One ``value`` for every layer, or a list of one per layer (a pruned model's sizes)."""
    if isinstance(value, (list, tuple)):
        if len(value) != layers:
            raise ValueError(f"{what}: {len(value)} values for {layers} layers")
        return [int(v) for v in value]
    return [int(value)] * layers


class TransformerEncoder(nn.Module):
    """Positional conv + LayerNorm + layers. Keys: pos_conv.0.*, layer_norm, layers.{i}.

    ``ffn`` and ``heads``: one size for all layers or a list of one per layer (pruned models,
    whose heads keep ``head_dim``); ``rel_pos``: WavLM's relative position options
    (:attr:`HubertConfig.rel_pos`), the bias table in the first layer."""

    def __init__(self, dim: int, ffn: int | list, layers: int, heads: int | list, conv_pos: int, conv_pos_groups: int,
                 dropout: float = 0.1, attn_dropout: float = 0.1, act_dropout: float = 0.0,
                 layer_norm_first: bool = False, layerdrop: float = 0.0, head_dim: int | None = None,
                 rel_pos: dict | None = None):
        super().__init__()
        self.pos_conv = PositionalConv(dim, conv_pos, conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim)
        ffns, heads_ = per_layer(ffn, layers, "ffn_dim"), per_layer(heads, layers, "num_heads")
        self.layers = nn.ModuleList(
            TransformerLayer(dim, ffns[i], heads_[i], dropout, attn_dropout, act_dropout, layer_norm_first, head_dim,
                             rel_pos, table=i == 0)
            for i in range(layers)
        )
        self.dropout, self.layer_norm_first, self.layerdrop = dropout, layer_norm_first, layerdrop
        self.rel_pos = rel_pos

    def set_dropouts(self, dropout: float | None = None, attention: float | None = None,
                     activation: float | None = None, layerdrop: float | None = None) -> None:
        """Replace dropout probabilities, as fairseq's fine-tuning overrides a pretrained model's (None
        keeps one): ``dropout`` after the positional conv and on every layer's residual branches,
        ``attention`` on the attention weights, ``activation`` after the FFN's activation,
        ``layerdrop`` the chance of skipping a layer in training."""
        for name, p in (("dropout", dropout), ("attention_dropout", attention), ("activation_dropout", activation),
                        ("layerdrop", layerdrop)):
            if p is not None and not 0.0 <= p < 1.0:
                raise ValueError(f"{name} = {p!r}: expected a probability in [0, 1)")
        if layerdrop is not None:
            self.layerdrop = float(layerdrop)
        for layer in self.layers:
            if dropout is not None:
                layer.dropout = float(dropout)
            if attention is not None:
                layer.self_attn.dropout = float(attention)
            if activation is not None:
                layer.act_dropout = float(activation)
        if dropout is not None:
            self.dropout = float(dropout)

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) projected features -> the input to the first layer (hidden state 0)."""
        x = x * mask[..., None].to(x.dtype)
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        return F.dropout(x, self.dropout, self.training)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, num_layers: int | None = None) -> list[torch.Tensor]:
        """x: (B, T, D) projected features; returns ``1 + num_layers`` hidden states (B, T, D)."""
        x = self.embed(x, mask)
        hiddens = [x]
        keys = None if unpadded(mask.sum(1), mask.shape[1]) else mask  # no padding: flash attention
        layers = self.layers if num_layers is None else self.layers[:num_layers]
        pos_bias = None if self.rel_pos is None else self.layers[0].self_attn.position_bias(x.shape[1], x.device)
        for layer in layers:
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                hiddens.append(x)
                continue
            x = layer(x, keys, pos_bias)
            hiddens.append(x)
        if self.layer_norm_first and (num_layers is None or num_layers == len(self.layers)):
            hiddens[-1] = self.layer_norm(hiddens[-1])
        return hiddens


class HubertModel(nn.Module):
    """HuBERT: CNN -> LN -> projection -> (masking) -> transformer; optional codebook head."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = ConvFeatureExtractor(cfg.conv_layers, cfg.extractor_mode, cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.conv_dim)
        self.post_extract_proj = nn.Linear(cfg.conv_dim, cfg.embed_dim) if cfg.conv_dim != cfg.embed_dim else None
        self.mask_emb = nn.Parameter(torch.empty(cfg.embed_dim).uniform_())
        self.encoder = TransformerEncoder(
            cfg.embed_dim, cfg.ffn_dim, cfg.num_layers, cfg.num_heads, cfg.conv_pos, cfg.conv_pos_groups,
            cfg.dropout, cfg.attention_dropout, cfg.activation_dropout, cfg.layer_norm_first, cfg.layerdrop,
            rel_pos=cfg.rel_pos,
        )
        if cfg.final_dim > 0:
            self.final_proj = nn.Linear(cfg.embed_dim, cfg.final_dim)
        if cfg.num_classes > 0:
            if cfg.final_dim <= 0:
                raise ValueError("a codebook (num_classes > 0) needs final_dim > 0")
            # N(0, 1) rows start nearly orthogonal (fairseq's U[0, 1) rows all point one way)
            self.label_embs_concat = nn.Parameter(torch.randn(cfg.num_classes, cfg.final_dim))

    @property
    def has_codebook(self) -> bool:
        return self.cfg.num_classes > 0 and self.cfg.final_dim > 0

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.cfg.conv_layers)

    def features(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (B, L) -> projected CNN features (B, T, D) and frame mask (B, T)."""
        if self.cfg.normalize:
            m = lengths_to_mask(lengths, wav.shape[1]).to(wav.dtype)
            n = m.sum(1, keepdim=True).clamp(min=1)
            mean = (wav * m).sum(1, keepdim=True) / n
            var = (((wav - mean) * m) ** 2).sum(1, keepdim=True) / n
            wav = (wav - mean) / torch.sqrt(var + 1e-5) * m
        feats, flen = self.feature_extractor(wav, lengths)
        x = self.layer_norm(feats.transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = F.dropout(x, self.cfg.dropout_input, self.training)
        return x, lengths_to_mask(flen, x.shape[1])

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, time_mask: torch.Tensor | None = None,
                num_layers: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Hidden states (``1 + num_layers`` of (B, T, D)) and the frame mask (B, T).

        ``time_mask`` (B, T) True where frames are replaced by the mask embedding (pretraining).
        """
        x, mask = self.features(wav, lengths)
        if time_mask is not None:
            x = torch.where(time_mask[..., None], self.mask_emb.to(x.dtype), x)
        return self.encoder(x, mask, num_layers), mask

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, D) last hidden state -> (B, T, C) cosine logits over the codebook / logit_temp."""
        z = F.normalize(self.final_proj(h).float(), dim=-1, eps=1e-8)
        e = F.normalize(self.label_embs_concat.float(), dim=-1, eps=1e-8)
        return z @ e.T / self.cfg.logit_temp
