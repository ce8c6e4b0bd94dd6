"""Structured pruning of a student that starts as its teacher (the method of DPHuBERT, Peng et
al. 2023, in our modules): learnable HardConcrete gates on CNN channels, attention heads, FFN
units and whole attention and FFN blocks; an expected parameter count that a Lagrangian term
drives to a target; then the pruned structures are removed, which leaves an ordinary student
with smaller matrices.

    gates = attach_gates(student, PruneConfig(target_params=23e6))  # hooks on the student's modules
    out = student(wav, lengths)        # training: sampled gates; eval: the final, fixed gates
    lag = gates.lagrangian(step)       # added to the distillation loss (the multipliers ascend)
    small = prune_student(student)     # a Student with per-layer sizes and the gates folded in

Gates (Louizos et al. 2018): z = min(1, max(0, sigmoid((log u - log(1 - u) + log_alpha) / beta)
* (r - l) + l)), u ~ U(0, 1), beta = 2/3, (l, r) = (-0.1, 1.1); P(z != 0) = sigmoid(log_alpha -
beta log(-l / r)). The final gates (:meth:`Gates.decide`): each group keeps its round(sum P(z != 0))
largest log_alpha at their median value min(1, max(0, sigmoid(log_alpha) (r - l) + l)), the others
are 0; then, while the result is larger than the target, the open CNN channel, head or FFN unit of
lowest log_alpha closes (a run whose Lagrangian has not settled still lands at the target, below
it by less than one head).

What is gated, and why it is exact to remove: a CNN channel's gate multiplies the channel after
its norm and GELU, so it folds into the next convolution's input weights (the last CNN layer is not
gated: a LayerNorm over its channels follows); a head's gate multiplies the head's output before
``out_proj``, an FFN unit's the unit after GELU, so they fold into the columns of ``out_proj`` and
``fc2``; a block's gate multiplies the block's output (``out_proj`` or ``fc2``, bias included).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from espnet_distill.config import check_range, from_dict
from espnet_distill.student.model import Student, StudentConfig

logger = logging.getLogger(__name__)

STRETCH = (-0.1, 1.1)  # the HardConcrete's (l, r)
TEMPERATURE = 2.0 / 3.0  # its beta
STRUCTURES = ("conv", "heads", "ffn", "layers")


class Group(NamedTuple):
    """One group of gates: its ``kind`` (``conv`` channels of CNN layer ``index``; ``heads`` or
    ``ffn`` units of encoder layer ``index``; ``attn`` or ``block``, the one gate of that layer's
    whole attention or FFN). Its :attr:`name` (``heads3``) keys ``Gates.groups``, the gates' state
    dict and the decided gates; nothing parses a name back."""

    kind: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.kind}{self.index}"

    @property
    def whole(self) -> bool:
        """One gate for a whole block (``attn``, ``block``), not units within it."""
        return self.kind in ("attn", "block")


@dataclass
class PruneConfig:
    """The ``prune:`` section of a distillation config."""

    target_params: float = 0.0  # parameters of the pruned student's front-end and encoder (0: no pruning)
    steps: int = 0  # updates of joint distillation and pruning; then train.max_steps of distillation
    target_warmup: float = 0.3  # fraction of the steps over which the target falls from the full size
    structures: list = field(default_factory=lambda: list(STRUCTURES))  # what may be pruned (STRUCTURES)
    gate_lr: float = 0.02  # learning rate of the gates and of the Lagrange multipliers
    init_keep: float = 0.95  # P(gate open) at the start: the student starts as the teacher

    def __post_init__(self) -> None:
        w = "prune"
        check_range(w, "target_params", self.target_params, self.target_params >= 0, "0 (off) or a parameter count")
        check_range(w, "steps", self.steps, self.steps >= 0, "0 or more updates")
        check_range(w, "steps", self.steps, self.target_params == 0 or self.steps >= 1,
                    "at least 1 update when target_params is set")
        check_range(w, "target_warmup", self.target_warmup, 0 <= self.target_warmup <= 1, "a fraction in [0, 1]")
        check_range(w, "structures", self.structures, bool(self.structures) and set(self.structures) <= set(STRUCTURES),
                    f"a non-empty list of {', '.join(STRUCTURES)}")
        check_range(w, "gate_lr", self.gate_lr, self.gate_lr > 0, "a positive learning rate")
        check_range(w, "init_keep", self.init_keep, 0 < self.init_keep < 1, "a probability in (0, 1)")

    @property
    def enabled(self) -> bool:
        return self.target_params > 0

    @classmethod
    def from_dict(cls, d: dict | None) -> "PruneConfig":
        return from_dict(cls, d or {}, "prune")

    def to_dict(self) -> dict:
        return asdict(self)


class HardConcrete(nn.Module):
    """``n`` gates in [0, 1] with learnable ``log_alpha`` (n,): :meth:`sample` (training),
    :meth:`fixed` (this group's final gates, before the size is checked)."""

    def __init__(self, n: int, init_keep: float):
        super().__init__()
        # P(z != 0) = init_keep at the start, with a little noise so that ties break
        shift = TEMPERATURE * math.log(-STRETCH[0] / STRETCH[1])
        self.log_alpha = nn.Parameter(torch.full((n,), math.log(init_keep / (1 - init_keep)) + shift)
                                      + 0.01 * torch.randn(n))

    @property
    def n(self) -> int:
        return self.log_alpha.numel()

    def prob_open(self) -> torch.Tensor:
        """(n,) P(z != 0), differentiable: the expected number of open gates is its sum."""
        return torch.sigmoid(self.log_alpha - TEMPERATURE * math.log(-STRETCH[0] / STRETCH[1]))

    def sample(self) -> torch.Tensor:
        u = torch.rand_like(self.log_alpha).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / TEMPERATURE)
        return (s * (STRETCH[1] - STRETCH[0]) + STRETCH[0]).clamp(0, 1)

    @torch.no_grad()
    def fixed(self) -> torch.Tensor:
        """(n,) the final gates: the round(expected open) largest log_alpha at their median, others 0."""
        keep = int(round(float(self.prob_open().sum())))
        median = (torch.sigmoid(self.log_alpha) * (STRETCH[1] - STRETCH[0]) + STRETCH[0]).clamp(0, 1)
        z = torch.zeros_like(median)
        if keep > 0:
            top = torch.topk(self.log_alpha, keep).indices
            z[top] = median[top]
        return z


class Gates(nn.Module):
    """The gates of one student of the teacher's shape, its expected size and the Lagrangian.

    Groups (:class:`Group`, by name in ``self.groups``; ``group_of`` maps a name back): ``conv`` i
    (channels of CNN layer i, all but the last), ``heads`` l, ``ffn`` l (units of layer l's FFN),
    ``attn`` l and ``block`` l (one gate for the whole attention, the whole FFN of layer l).
    ``lambdas`` (2,) are the Lagrange multipliers."""

    def __init__(self, student: Student, cfg: PruneConfig):
        super().__init__()
        self.cfg = cfg
        scfg = student.cfg
        self.conv = [list(c) for c in student.frontend.conv_layers]
        self.mode = student.frontend.feature_extractor.mode
        self.dim, self.layers, self.heads, self.ffn = scfg.dim, scfg.num_layers, scfg.num_heads, scfg.ffn_dim
        self.head_dim = scfg.dim // scfg.num_heads
        groups: dict[Group, HardConcrete] = {}
        want = set(cfg.structures)
        if "conv" in want:
            if self.mode != "default":
                raise ValueError("prune.structures: 'conv' needs the 'default' CNN (GroupNorm on the first layer "
                                 "only); a LayerNorm over channels in every layer cannot lose channels exactly")
            for i in range(len(self.conv) - 1):
                groups[Group("conv", i)] = HardConcrete(self.conv[i][0], cfg.init_keep)
        for layer in range(self.layers):
            if "heads" in want:
                groups[Group("heads", layer)] = HardConcrete(self.heads, cfg.init_keep)
            if "ffn" in want:
                groups[Group("ffn", layer)] = HardConcrete(self.ffn, cfg.init_keep)
            if "layers" in want:
                groups[Group("attn", layer)] = HardConcrete(1, cfg.init_keep)
                groups[Group("block", layer)] = HardConcrete(1, cfg.init_keep)
        self.group_of = {g.name: g for g in groups}
        self.groups = nn.ModuleDict({g.name: hc for g, hc in groups.items()})
        self.lambdas = nn.Parameter(torch.zeros(2))
        self.lambdas.register_hook(lambda g: -g)  # the multipliers ascend: max over lambda, min over the rest
        self.current: dict[str, torch.Tensor] = {}
        self.current_target = cfg.target_params  # the schedule's target at the last update (eval prunes to it)
        self._decided: dict[str, torch.Tensor] | None = None  # eval mode's gates, decided once per eval spell
        self.full = self.expected_params(ones=True)
        self.fixed_params = sum(p.numel() for p in student.frontend.parameters()) + sum(
            p.numel() for p in student.encoder.parameters()) - self.full

    # ------------------------------------------------------------------ sizes
    def expected_params(self, ones: bool = False, gates: dict[str, torch.Tensor] | None = None):
        """The expected parameters of everything the gates can remove (a differentiable tensor;
        products of expectations: gates independent). With ``ones``, the full size (a float); with
        ``gates`` (decided gates of every group), the size removal leaves."""
        d, hd = self.dim, self.head_dim

        def open_(group: Group, n: int):
            name = group.name
            if ones or name not in self.groups:
                return float(n)
            if gates is not None:
                return float((gates[name] > 0).sum())
            return self.groups[name].prob_open().sum()

        total = 0.0
        prev = 1.0  # the waveform: one input channel
        for i, (c, k, _) in enumerate(self.conv):
            out = open_(Group("conv", i), c) if i < len(self.conv) - 1 else float(c)
            total = total + out * prev * k + (2 * out if i == 0 and self.mode == "default" else 0)
            prev = out
        for layer in range(self.layers):
            attn = open_(Group("attn", layer), 1) * open_(Group("heads", layer), self.heads)
            ffn = open_(Group("block", layer), 1) * open_(Group("ffn", layer), self.ffn)
            total = total + attn * (4 * d * hd + 3 * hd) + ffn * (2 * d + 1)
        return total

    def _unit_cost(self, group: Group, n_open: dict[str, int]) -> float:
        """Parameters that closing one more open gate of ``group`` (channels, heads or FFN units)
        removes, given the number of open gates of every group by name (``n_open``)."""
        d, hd, i = self.dim, self.head_dim, group.index
        if group.kind == "conv":
            before = n_open.get(Group("conv", i - 1).name, self.conv[i - 1][0]) if i > 0 else 1
            after = n_open.get(Group("conv", i + 1).name, self.conv[i + 1][0])
            return before * self.conv[i][1] + after * self.conv[i + 1][1] + (2 if i == 0 else 0)
        if group.kind == "heads":
            return n_open.get(Group("attn", i).name, 1) * (4 * d * hd + 3 * hd)
        return n_open.get(Group("block", i).name, 1) * (2 * d + 1)

    @torch.no_grad()
    def decide(self, target: float | None = None) -> dict[str, torch.Tensor]:
        """The gates of every group for a model of at most ``target`` parameters (default
        ``target_params``; see the module docstring): values in [0, 1], 0 closed."""
        z = {name: g.fixed() for name, g in self.groups.items()}
        size = self.fixed_params + self.expected_params(gates=z)
        target = self.cfg.target_params if target is None else target
        if size <= target:
            return z
        n_open = {name: int((v > 0).sum()) for name, v in z.items()}
        units = sorted((float(g.log_alpha[j]), name, j) for name, g in self.groups.items()
                       if not self.group_of[name].whole for j in range(g.n) if z[name][j] > 0)
        for _, name, j in units:
            if size <= target:
                break
            if n_open[name] == 1 and self.group_of[name].kind == "conv":
                continue  # a CNN layer keeps one channel
            size -= self._unit_cost(self.group_of[name], n_open)
            z[name][j] = 0
            n_open[name] -= 1
        return z

    def target(self, step: int) -> float:
        """The parameter count the Lagrangian aims at after ``step`` updates: from the full size down
        to ``target_params`` linearly over the first ``target_warmup`` of ``steps``."""
        ramp = max(1.0, self.cfg.target_warmup * self.cfg.steps)
        frac = min(1.0, step / ramp)
        full = self.fixed_params + self.full
        return full - frac * (full - self.cfg.target_params)

    def lagrangian(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """lambda_1 (e - t) + lambda_2 (e - t)^2 with e, t the expected and target sizes as fractions
        of the full size; returns it and its statistics (sizes in parameters)."""
        full = self.fixed_params + self.full
        expected = self.fixed_params + self.expected_params()
        self.current_target = self.target(step)
        gap = (expected - self.current_target) / full
        term = self.lambdas[0] * gap + self.lambdas[1] * gap * gap
        return term, {"expected_params": float(expected.detach()), "target_params": self.current_target}

    # ------------------------------------------------------------------ gating
    def draw(self) -> None:
        """One value per gate for the coming forward pass: sampled in training; in eval, decided for
        the schedule's current target (validation during pruning sees the model of that size)."""
        if self.training:
            self.current = {name: g.sample() for name, g in self.groups.items()}
        elif self._decided is None:  # the gates do not change in eval mode: decide once
            self._decided = self.current = self.decide(self.current_target)

    def train(self, mode: bool = True) -> "Gates":
        self._decided = None  # entering or leaving eval mode: the next eval forward decides again
        return super().train(mode)

    def scale(self, group: Group, x: torch.Tensor, dim: int) -> torch.Tensor:
        """x times the gates of ``group`` along ``dim`` (each gate repeated over equal slices)."""
        z = self.current.get(group.name)
        if z is None:
            return x
        z = z.to(x.dtype).repeat_interleave(x.shape[dim] // z.numel())
        shape = [1] * x.dim()
        shape[dim] = -1
        return x * z.view(shape)


def attach_gates(student: Student, cfg: PruneConfig) -> Gates:
    """Gates for ``student`` (the teacher's copy: uniform layers, the CNN front-end), registered as
    its submodule ``gates`` and applied by forward hooks; returns them."""
    if student.cfg.frontend != "cnn" or student.cfg.layer_heads or student.cfg.layer_ffn_dims:
        raise ValueError("pruning starts from the teacher's own architecture: a CNN student with uniform layers")
    gates = Gates(student, cfg)
    student.add_module("gates", gates)
    student.register_forward_pre_hook(lambda module, args: gates.draw())
    convs = student.frontend.feature_extractor.conv_layers
    for i in range(len(convs) - 1):
        convs[i][-1].register_forward_hook(lambda m, a, out, i=i: gates.scale(Group("conv", i), out, 1))
    for layer, block in enumerate(student.encoder.layers):
        attn = block.self_attn.out_proj
        attn.register_forward_pre_hook(lambda m, a, layer=layer: (gates.scale(Group("heads", layer), a[0], -1),))
        attn.register_forward_hook(lambda m, a, out, layer=layer: gates.scale(Group("attn", layer), out, -1))
        block.fc2.register_forward_pre_hook(lambda m, a, layer=layer: (gates.scale(Group("ffn", layer), a[0], -1),))
        block.fc2.register_forward_hook(lambda m, a, out, layer=layer: gates.scale(Group("block", layer), out, -1))
    return gates


def _kept(z: torch.Tensor | None, n: int, block: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices kept, their gate values) of a group's decided gates (all, at 1, when not gated);
    none when the ``block`` gate around the group is closed."""
    idx, val = (torch.arange(n), torch.ones(n)) if z is None else (z.nonzero().flatten(), z[z.nonzero().flatten()])
    if block is not None and float(block[0]) == 0:
        return idx[:0], val[:0]
    return idx, val


@torch.no_grad()
def prune_student(student: Student) -> Student:
    """The gated ``student`` with its closed structures removed and its fixed gates folded into the
    weights: an ordinary Student (per-layer sizes) whose outputs equal the gated student's in eval
    mode."""
    gates: Gates = student.gates
    z = gates.decide()
    cfg = student.cfg
    hd = gates.head_dim

    def at(kind: str, index: int, default: torch.Tensor | None = None) -> torch.Tensor | None:
        return z.get(Group(kind, index).name, default)

    conv_keep = [_kept(at("conv", i), c) for i, (c, _, _) in enumerate(gates.conv)]
    head_keep = [_kept(at("heads", i), gates.heads, at("attn", i)) for i in range(gates.layers)]
    ffn_keep = [_kept(at("ffn", i), gates.ffn, at("block", i)) for i in range(gates.layers)]
    heads, ffns = [len(idx) for idx, _ in head_keep], [len(idx) for idx, _ in ffn_keep]
    new_cfg = StudentConfig.from_dict({
        **cfg.to_dict(),
        "frontend_conf": {**cfg.frontend_conf,
                          "conv_layers": [[len(idx), k, s] for (idx, _), (_, k, s) in zip(conv_keep, gates.conv)]},
        "layer_heads": heads, "layer_ffn_dims": ffns, "head_dim": hd,
    })
    small = Student(new_cfg)
    state = {k: v for k, v in student.state_dict().items() if not k.startswith("gates.")}
    out = dict(state)
    prev_idx, prev_z = torch.arange(1), torch.ones(1)
    for i, (idx, zi) in enumerate(conv_keep):
        key = f"frontend.feature_extractor.conv_layers.{i}"
        w = state[f"{key}.0.weight"][idx][:, prev_idx] * prev_z[None, :, None]
        out[f"{key}.0.weight"] = w
        for name in ("weight", "bias"):
            if f"{key}.2.{name}" in state:  # the first layer's GroupNorm: per channel
                out[f"{key}.2.{name}"] = state[f"{key}.2.{name}"][idx]
        prev_idx, prev_z = idx, zi
    for layer in range(gates.layers):
        key = f"encoder.layers.{layer}"
        a = at("attn", layer, torch.ones(1))[0]
        h_idx, h_z = head_keep[layer]
        cols = (h_idx[:, None] * hd + torch.arange(hd)[None]).flatten()
        for proj in ("q_proj", "k_proj", "v_proj"):
            out[f"{key}.self_attn.{proj}.weight"] = state[f"{key}.self_attn.{proj}.weight"][cols]
            out[f"{key}.self_attn.{proj}.bias"] = state[f"{key}.self_attn.{proj}.bias"][cols]
        out[f"{key}.self_attn.out_proj.weight"] = state[f"{key}.self_attn.out_proj.weight"][:, cols] * (
            h_z.repeat_interleave(hd)[None] * a)
        out[f"{key}.self_attn.out_proj.bias"] = state[f"{key}.self_attn.out_proj.bias"] * a
        b = at("block", layer, torch.ones(1))[0]
        f_idx, f_z = ffn_keep[layer]
        out[f"{key}.fc1.weight"] = state[f"{key}.fc1.weight"][f_idx]
        out[f"{key}.fc1.bias"] = state[f"{key}.fc1.bias"][f_idx]
        out[f"{key}.fc2.weight"] = state[f"{key}.fc2.weight"][:, f_idx] * (f_z[None] * b)
        out[f"{key}.fc2.bias"] = state[f"{key}.fc2.bias"] * b
    small.load_state_dict(out)
    counts = small.param_counts()
    logger.info("pruned student: %d parameters (target %d); conv %s, heads %s, FFN units %s",
                counts["total_without_heads"], int(gates.cfg.target_params),
                [c[0] for c in new_cfg.frontend_conf["conv_layers"]], heads, ffns)
    return small.train(student.training)


def identity_heads(student: Student) -> None:
    """Layer-wise prediction heads (Linear(D -> D_T), D == D_T) set to the identity: a copy of the
    teacher predicts the teacher exactly before anything is pruned."""
    heads = getattr(student.pred_head, "heads", None)
    if heads is None or student.cfg.dim != student.cfg.teacher_dim:
        return
    with torch.no_grad():
        for lin in heads.values():
            lin.weight.copy_(torch.eye(student.cfg.dim))
            lin.bias.zero_()


SIZE_KEYS = ("frontend", "frontend_conf", "dim", "ffn_dim", "num_layers", "num_heads", "conv_pos", "conv_pos_groups",
             "layer_norm_first", "layer_ffn_dims", "layer_heads", "head_dim")


def check_no_sizes(student: dict) -> None:
    """A pruned run's student section sets no size: the architecture is the teacher's."""
    given = sorted(k for k in student if k in SIZE_KEYS)
    if given:
        raise ValueError(f"student {given}: a pruned student has the teacher's architecture; remove them "
                         "(prune.target_params sets the size)")


def teacher_copy_config(hubert_cfg, student: dict) -> dict:
    """The student section of a pruned run completed with the teacher's architecture
    (``hubert_cfg``: the teacher's :class:`~espnet_distill.nn.hubert.HubertConfig`); the
    student section may set the heads, dropout and the like, never a size."""
    check_no_sizes(student)
    unsupported = [why for bad, why in [
        (hubert_cfg.conv_bias, "CNN biases (conv_bias)"), (hubert_cfg.normalize, "waveform normalisation"),
        (hubert_cfg.relative_position_embedding, "WavLM's relative position bias")] if bad]
    if unsupported:
        raise ValueError(f"pruning starts from a copy of the teacher, and a CNN student has no {unsupported[0]}: "
                         "this teacher cannot be pruned yet")
    return {**student, "frontend": "cnn",
            "frontend_conf": {"conv_layers": [list(c) for c in hubert_cfg.conv_layers],
                              "extractor_mode": hubert_cfg.extractor_mode, "layer_norm": True},
            "dim": hubert_cfg.embed_dim, "ffn_dim": hubert_cfg.ffn_dim, "num_layers": hubert_cfg.num_layers,
            "num_heads": hubert_cfg.num_heads, "conv_pos": hubert_cfg.conv_pos,
            "conv_pos_groups": hubert_cfg.conv_pos_groups, "layer_norm_first": hubert_cfg.layer_norm_first}
