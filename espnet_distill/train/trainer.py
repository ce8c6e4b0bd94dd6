"""A small step-based trainer shared by teacher pretraining and distillation.

The trainer owns the loop; a *task* owns the model and the loss:

    class MyTask:
        model: nn.Module                                  # everything that is trained and saved
        def training_step(self, batch, step) -> {"loss": (sum, count), "name": (sum, count), ...}
        def validation_step(self, batch) -> {"name": (float sum, float count)}
        # optional: training in phases, each with its own trainable parameters, optimizer and
        # warm-up + decay schedule (front-end adaptation, then the whole student)
        phase_starts: list[int]                           # first step of each phase, [0, ...]
        def trainable_parameters(self, phase) -> list[nn.Parameter]
        # optional: True for one AdamW and one schedule over the whole run instead (its parameters
        # those of every phase; a parameter keeps its moments while a phase leaves it out)
        shared_schedule: bool
        # optional: AdamW parameter groups of the trainable parameters, with their own "lr" or
        # "weight_decay" (the schedule scales every group alike)
        def param_groups(self, phase) -> list[dict]

``training_step`` returns sums and counts, not means (``loss``: a differentiable sum over the
batch's frames and their number; the rest detached statistics), so that an update is defined by
its utterances alone:

- **One global batch.** Each update's batch is formed for the whole world (``global_batch_seconds``
  / ``global_batch_size``, or the per-process ``max_batch_*`` times the number of processes) in
  an order that does not depend on the number of processes, then split into ``world x
  accum_grad`` contiguous shares (:class:`~espnet_distill.data.dataset.BucketBatches`). A share
  may be empty (more processes than utterances); its process still takes part.
- **One normalisation.** Every process back-propagates its summed loss over a scale known to all
  (about the update's frame count); the gradients and the counts of every process and
  micro-batch are added (one flat all-reduce), and the gradient is then divided by the update's
  total count, as fairseq does with its ``sample_size``. N processes, or one process accumulating
  ``accum_grad`` micro-batches, thus compute the update that one process computes on the same
  utterances, to float rounding.

Features: AdamW (fused on CUDA) with linear warmup and linear decay (per phase, or one over the run), gradient
clipping, fp16/bf16 autocast and TF32 on GPU, ``torch.compile`` (``compile: true``), data
parallelism under torchrun (nccl on GPU, gloo on CPU; only the phase's trainable parameters are
reduced), gradient accumulation (``accum_grad``),
streaming DataLoader workers with prefetch and pinned memory, atomic checkpoints every N steps
holding model, optimizer, scheduler, scaler, every rank's RNG states and the data position,
exact ``resume`` (one process or several), non-finite updates skipped and counted as GradScaler
does (the run stops after ``max_nonfinite_steps`` in a row), decisions to stop taken by all ranks
together, tqdm progress, every loss term of the whole update per step in ``train_log.jsonl`` (and
TensorBoard when installed), and the resolved config beside the checkpoint.

``Trainer.update_hooks`` are called with the step number after each update. Fault injection for
tests is one: with ``ESPNET_DISTILL_KILL_AT_STEP=N`` in the environment the process SIGKILLs
itself right after the update of step N and before that step's checkpoint is written, as a crash
or an out-of-memory kill would; the next run must resume exactly.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from espnet_distill.checkpoint_io import atomic_save, safe_load
from espnet_distill.config import check_range, from_dict
from espnet_distill.data.audio import FRAME_WINDOW, SAMPLE_RATE
from espnet_distill.data.dataset import LONG_UTTS, AudioDataset, BucketBatches, collate

logger = logging.getLogger(__name__)

COMPILE_BACKEND = "inductor"  # torch.compile's backend for train.compile (tests use a quicker one)
FRAMES_PER_SECOND = 50  # about a HuBERT frame rate: scales the summed loss before backward (fp16 range only)


@dataclass
class TrainConfig:
    max_steps: int = 1000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8  # AdamW's epsilon (torch's default; s3prl's distiller runs 1e-6)
    weight_decay: float = 1e-6
    no_decay: tuple[str, ...] = ()  # parameters whose name holds one of these take no weight decay (s3prl: bias)
    warmup_ratio: float = 0.07
    min_lr_ratio: float = 0.0
    grad_clip: float = 5.0
    max_batch_seconds: float = 60.0  # padded audio (utterances x longest) per process and micro-batch
    max_batch_size: int | None = None  # utterances per process and micro-batch (None: no cap)
    global_batch_seconds: float = 0.0  # padded audio per update, all processes and micro-batches together
                                       # (replaces max_batch_seconds; the same update on any number of GPUs)
    global_batch_size: int = 0  # utterances per update, all processes together (replaces max_batch_size); 0: off
    accum_grad: int = 1  # micro-batches each process accumulates per update (the update stays the same)
    max_utt_seconds: float = 20.0  # longer utterances are cropped to this (or dropped: long_utts)
    long_utts: str = "crop"  # crop (a random window per epoch, as s3prl's distiller) | drop
    amp: str = "none"  # none | fp16 | bf16 (autocast on GPU only)
    seed: int = 0
    log_every: int = 10
    valid_every: int = 0  # 0: only at the end
    ckpt_every: int = 100
    num_workers: int = -1  # DataLoader workers per process; -1: 4 on GPU (at most the CPUs per process), 0 on CPU
    prefetch_batches: int = 4  # batches each worker prepares ahead
    cache_audio: bool = False  # keep decoded audio in memory (only for corpora that fit; per process and worker)
    skip_bad_audio: bool = True  # unreadable utterances are skipped with a warning and counted ...
    max_bad_utts: int = 100  # ... and the run stops once more than this many were skipped
    max_nonfinite_steps: int = 20  # stop after this many updates in a row with a non-finite loss or gradient
    device: str = "auto"  # auto | cpu | cuda
    compile: bool = False  # torch.compile the trained model's forward (dynamic shapes; first steps compile)
    max_minutes: float = 0.0  # stop early (and checkpoint) after this wall time; 0 = no limit

    def __post_init__(self) -> None:
        w = "train"
        check_range(w, "max_steps", self.max_steps, self.max_steps >= 1, "at least 1 update")
        check_range(w, "lr", self.lr, self.lr > 0, "a positive learning rate")
        check_range(w, "eps", self.eps, self.eps > 0, "a positive epsilon")
        check_range(w, "weight_decay", self.weight_decay, self.weight_decay >= 0, "0 or more")
        check_range(w, "warmup_ratio", self.warmup_ratio, 0 <= self.warmup_ratio < 1, "a fraction in [0, 1)")
        check_range(w, "min_lr_ratio", self.min_lr_ratio, 0 <= self.min_lr_ratio <= 1, "a fraction in [0, 1]")
        check_range(w, "grad_clip", self.grad_clip, self.grad_clip > 0, "a positive norm")
        check_range(w, "max_batch_seconds", self.max_batch_seconds, self.max_batch_seconds > 0, "positive seconds")
        check_range(w, "max_utt_seconds", self.max_utt_seconds, self.max_utt_seconds > 0, "positive seconds")
        check_range(w, "long_utts", self.long_utts, self.long_utts in LONG_UTTS, " or ".join(LONG_UTTS))
        check_range(w, "amp", self.amp, self.amp in ("none", "fp16", "bf16"), "none, fp16 or bf16")
        check_range(w, "device", self.device, self.device in ("auto", "cpu", "cuda"), "auto, cpu or cuda")
        for key in ("log_every", "ckpt_every"):
            check_range(w, key, getattr(self, key), getattr(self, key) >= 1, "at least 1 step")
        for key in ("valid_every", "global_batch_size", "max_bad_utts"):
            check_range(w, key, getattr(self, key), getattr(self, key) >= 0, "0 (off) or more")
        check_range(w, "accum_grad", self.accum_grad, self.accum_grad >= 1, "at least 1 micro-batch")
        if self.max_batch_size is not None:
            check_range(w, "max_batch_size", self.max_batch_size, self.max_batch_size >= 1, "at least 1 utterance")
        check_range(w, "global_batch_seconds", self.global_batch_seconds, self.global_batch_seconds >= 0,
                    "0 (off) or positive seconds")
        check_range(w, "max_nonfinite_steps", self.max_nonfinite_steps, self.max_nonfinite_steps >= 1, "at least 1")
        check_range(w, "betas", self.betas, all(0 <= b < 1 for b in self.betas), "two numbers in [0, 1)")
        check_range(w, "no_decay", self.no_decay, all(isinstance(n, str) and n for n in self.no_decay),
                    "a list of parameter-name substrings, e.g. [bias]")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return from_dict(cls, d, "train")

    def update_budget(self, world: int) -> tuple[float, int | None]:
        """(padded seconds, utterances) of one update's whole batch when ``world`` processes train:
        the global values when set, else the per-process values times ``world x accum_grad``."""
        shares = world * self.accum_grad
        seconds = self.global_batch_seconds if self.global_batch_seconds > 0 else self.max_batch_seconds * shares
        size = self.max_batch_size * shares if self.max_batch_size is not None else None
        if self.global_batch_size > 0:
            size = self.global_batch_size
        return seconds, size

    def datasets(self, train_dir, valid_dir, targets: tuple[dict | None, dict | None] = (None, None),
                 min_samples: int = FRAME_WINDOW) -> tuple[AudioDataset, AudioDataset]:
        """The training and validation sets of two data dirs as this config reads them (length cap,
        crops or drops, audio cache, unreadable audio skipped); ``targets``: their frame targets."""
        return tuple(AudioDataset(d, t, self.max_utt_seconds, min_samples, cache_audio=self.cache_audio,
                                  skip_bad_audio=self.skip_bad_audio, long_utts=self.long_utts, seed=self.seed)
                     for d, t in zip((train_dir, valid_dir), targets))

    def workers(self, device: torch.device, local_world: int) -> int:
        if self.num_workers >= 0:
            return self.num_workers
        if device.type != "cuda":
            return 0
        return max(1, min(4, (os.cpu_count() or 1) // max(1, local_world) - 1))


class Task(Protocol):
    model: nn.Module

    def training_step(self, batch: dict, step: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]: ...

    def validation_step(self, batch: dict) -> dict[str, tuple[float, float]]: ...


def fault_injection_hooks() -> list[Callable[[int], None]]:
    """The update hook ``ESPNET_DISTILL_KILL_AT_STEP=N`` asks for (see the module's docstring), if any."""
    value = os.environ.get("ESPNET_DISTILL_KILL_AT_STEP", "").strip()
    if not value:
        return []
    kill_at = int(value)

    def kill(step: int) -> None:
        if step == kill_at:
            logger.warning("ESPNET_DISTILL_KILL_AT_STEP=%d: killing this process", step)
            os.kill(os.getpid(), signal.SIGKILL)

    return [kill]


def no_decay_groups(groups: list[dict], names: dict[int, str], no_decay: Sequence[str]) -> list[dict]:
    """Optimizer ``groups`` with each split in two, as s3prl's ``get_grouped_parameters`` does: its
    parameters whose name (``names``: id -> name) contains one of the ``no_decay`` substrings get
    ``weight_decay`` 0, the others keep the group's settings. Empty groups are left out."""
    out = []
    for g in groups:
        exempt = {id(p) for p in g["params"] if any(s in names[id(p)] for s in no_decay)}
        kept = [p for p in g["params"] if id(p) not in exempt]
        free = [p for p in g["params"] if id(p) in exempt]
        out += [{**g, "params": kept}] if kept else []
        out += [{**g, "params": free, "weight_decay": 0.0}] if free else []
    return out


def union_groups(group_lists: list[list[dict]]) -> list[dict]:
    """Optimizer groups holding every parameter of ``group_lists`` once: groups with the same
    settings (every key but ``params``) merged, in the order first seen."""
    merged: dict[tuple, dict] = {}
    seen: set[int] = set()
    for groups in group_lists:
        for g in groups:
            key = tuple(sorted((k, repr(v)) for k, v in g.items() if k != "params"))
            out = merged.setdefault(key, {**g, "params": []})
            out["params"] += [p for p in g["params"] if id(p) not in seen]
            seen.update(id(p) for p in g["params"])
    return [g for g in merged.values() if g["params"]]


def warmup_linear(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear 0 -> 1 over ``warmup`` steps, then linear 1 -> ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    frac = min(1.0, (step - warmup) / (total - warmup))
    return max(min_ratio, 1.0 - frac * (1.0 - min_ratio))


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for but CUDA is not available")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def move(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on ``device`` (asynchronous from pinned memory); ``lengths_cpu`` keeps
    the lengths on the host for checks that must not wait for the device."""
    out = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    if "lengths" in batch and torch.is_tensor(batch["lengths"]):
        out["lengths_cpu"] = batch["lengths"]
    return out


def merge_sums(parts: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """{name: [sum, count]} of several processes or micro-batches added name by name, in order
    (every process adds the same floats in the same order, so all get the same result)."""
    out: dict[str, list[float]] = {}
    for part in parts:
        for k, (total, count) in part.items():
            acc = out.setdefault(k, [0.0, 0.0])
            acc[0] += total
            acc[1] += count
    return out


def means(sums: dict[str, list[float]]) -> dict[str, float]:
    return {k: total / count if count > 0 else 0.0 for k, (total, count) in sums.items()}


class Trainer:
    """Runs a task for ``cfg.max_steps`` steps; see the module docstring."""

    def __init__(self, task: Task, train_set: AudioDataset, valid_set: AudioDataset | None, cfg: TrainConfig,
                 outdir: str | os.PathLike, resolved_config: dict | None = None):
        self.task, self.cfg, self.outdir = task, cfg, Path(outdir)
        self.rank, self.world, local_rank = dist_info()
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
        self.device = pick_device(cfg.device, local_rank)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        task.model.to(self.device)
        if hasattr(task, "to"):
            task.to(self.device)
        self.model = task.model
        if cfg.compile:  # in place: the state dict keeps its names
            self.model.compile(dynamic=True, backend=COMPILE_BACKEND)
        self.train_set, self.valid_set = train_set, valid_set
        if self.device.type == "cuda":  # TF32 matmuls and convolutions (Ampere and later)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.batch_seconds, self.batch_size = cfg.update_budget(self.world)
        self.sampler = BucketBatches(train_set.samples, self.batch_seconds, True, cfg.seed, self.rank, self.world,
                                     self.batch_size, cfg.accum_grad)
        self.phase_starts = list(getattr(task, "phase_starts", [0]))
        if self.phase_starts[0] != 0 or self.phase_starts != sorted(set(self.phase_starts)):
            raise ValueError(f"phase_starts must be increasing and start at 0, got {self.phase_starts}")
        self.phase = -1
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.params: list[nn.Parameter] = []
        self.amp_dtype = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.amp]
        if self.device.type != "cuda":
            self.amp_dtype = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.counts = {"skipped_updates": 0, "bad_utts": 0, "cropped_utts": 0}
        self.nonfinite_in_a_row = 0
        self.resolved_config = resolved_config or {}
        self._tb = None
        # called with the step number after each update, before its validation and checkpoint
        self.update_hooks: list[Callable[[int], None]] = fault_injection_hooks()
        self._enter_phase(0)

    # ------------------------------------------------------------------ phases
    def phase_of(self, step: int) -> int:
        return max(i for i, s in enumerate(self.phase_starts) if s <= step)

    def phase_length(self, phase: int) -> int:
        end = self.phase_starts[phase + 1] if phase + 1 < len(self.phase_starts) else self.cfg.max_steps
        return max(1, end - self.phase_starts[phase])

    def _optimizer_groups(self, phases: Sequence[int]) -> list[dict]:
        """AdamW parameter groups of the trainable parameters of ``phases`` (the task's own groups,
        or one group in the model's order)."""
        if hasattr(self.task, "param_groups"):
            return union_groups([self.task.param_groups(ph) for ph in phases])
        if not hasattr(self.task, "trainable_parameters"):
            return [{"params": self.params}]
        ids = {id(p) for ph in phases for p in self.task.trainable_parameters(ph)}
        return [{"params": [p for p in self.model.parameters() if id(p) in ids]}]

    def _enter_phase(self, phase: int) -> None:
        """Make ``phase``'s parameters the trainable ones, with a fresh AdamW and a warm-up + decay
        schedule over the phase's own steps; under the task's ``shared_schedule``, the one AdamW
        (over every phase's parameters) and schedule (over ``max_steps``) of the run go on."""
        cfg = self.cfg
        if hasattr(self.task, "trainable_parameters"):
            trainable = {id(p) for p in self.task.trainable_parameters(phase)}
            for p in self.model.parameters():
                p.requires_grad_(id(p) in trainable)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        shared = bool(getattr(self.task, "shared_schedule", False))
        if shared and self.optimizer is not None:
            logger.info("phase %d from step %d: %d trainable parameters; the run's AdamW and schedule go on",
                        phase, self.step, sum(p.numel() for p in self.params))
            self.phase = phase
            return
        fused = {"fused": True} if self.device.type == "cuda" else {}
        groups = self._optimizer_groups(range(len(self.phase_starts)) if shared else [phase])
        if cfg.no_decay:
            groups = no_decay_groups(groups, {id(p): n for n, p in self.model.named_parameters()}, cfg.no_decay)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                           weight_decay=cfg.weight_decay, **fused)
        length = cfg.max_steps if shared else self.phase_length(phase)
        warmup = int(round(cfg.warmup_ratio * length))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_linear(s, length, warmup, cfg.min_lr_ratio))
        if self.phase >= 0:
            logger.info("phase %d from step %d: %d trainable parameters, %d warm-up steps of %d", phase, self.step,
                        sum(p.numel() for p in self.params), warmup, length)
        self.phase = phase

    # ------------------------------------------------------------------ checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.outdir / "checkpoint.pt"

    def _rng_state(self) -> dict:
        return {"torch": torch.get_rng_state(), "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def save_checkpoint(self) -> None:
        """Rank 0 writes the checkpoint, with every rank's RNG state (a collective call)."""
        rngs = [self._rng_state()]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, self._rng_state())
        if self.rank != 0:
            return
        state = {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "phase": self.phase,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng_per_rank": rngs, "counts": dict(self.counts), "nonfinite_in_a_row": self.nonfinite_in_a_row,
            "config": self.resolved_config, "train": asdict(self.cfg), "world": self.world,
            "batches": "global",  # batch_in_epoch counts whole updates, whatever the number of processes
        }
        atomic_save(state, self.ckpt_path)

    def load_checkpoint(self) -> bool:
        if not self.ckpt_path.is_file():
            return False
        state = safe_load(self.ckpt_path)
        if state.get("config") != self.resolved_config or state.get("train") != asdict(self.cfg):
            raise RuntimeError(
                f"{self.ckpt_path} was written by a run with another configuration; remove it (or pass "
                "--no-resume) to start over, or restore the configuration it was made with")
        if "rng_per_rank" not in state:
            raise RuntimeError(f"{self.ckpt_path} was written by an older espnet_distill (no per-rank RNG states); "
                               "remove it (or pass --no-resume) to start over")
        if state.get("world", 1) > 1 and state.get("batches") != "global":
            raise RuntimeError(f"{self.ckpt_path} was written by an older espnet_distill whose processes each took "
                               "their own batches: its data position means something else now; remove it (or pass "
                               "--no-resume) to start over")
        self.model.load_state_dict(state["model"])
        self._enter_phase(int(state["phase"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng_per_rank"]
        if len(rngs) != self.world:
            logger.warning("%s was written by %d processes, this run has %d: the data order and position are kept, "
                           "the random streams (dropout, masks) start anew", self.ckpt_path, len(rngs), self.world)
            torch.manual_seed(self.cfg.seed + 1000 * self.rank + state["step"])
        else:
            rng = rngs[self.rank]
            torch.set_rng_state(rng["torch"])
            py = rng["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
            if rng["cuda"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.counts.update(state["counts"])
        self.nonfinite_in_a_row = state["nonfinite_in_a_row"]
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", self.ckpt_path, self.step, self.epoch,
                    self.batch_in_epoch)
        return True

    # ------------------------------------------------------------------ logging
    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        with open(self.outdir / "train_log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb = False
            else:
                self._tb = SummaryWriter(str(self.outdir / "tensorboard"))
        if self._tb:
            for k, v in record.items():
                if k not in ("step", "split") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{record.get('split', 'train')}/{k}", v, record["step"])

    # ------------------------------------------------------------------ loops
    def _loader(self, dataset, sampler):
        # a private generator: creating a loader must not draw from the global RNG, or a run
        # resumed mid-epoch would see other dropout and masks than an uninterrupted one
        workers = self.cfg.workers(self.device, self.local_world)
        extra = {"prefetch_factor": self.cfg.prefetch_batches} if workers > 0 else {}
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                                           pin_memory=self.device.type == "cuda", generator=torch.Generator(), **extra)

    def _gather(self, part: dict) -> list[dict]:
        """Every rank's ``part`` (a small picklable mapping), in rank order."""
        if self.world == 1:
            return [part]
        parts: list = [None] * self.world
        dist.all_gather_object(parts, part)
        return parts

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Frame-weighted means of the task's validation sums over the whole valid set; each rank
        takes its shares of every batch (some may be empty), and all ranks meet once at the end."""
        if self.valid_set is None:
            return {}
        self.model.eval()
        sums: dict[str, list[float]] = {}
        sampler = BucketBatches(self.valid_set.samples, self.batch_seconds, False, 0, self.rank, self.world,
                                self.batch_size, self.cfg.accum_grad)
        for batch in self._loader(self.valid_set, sampler):
            if not batch["utt"]:
                continue
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                stats = self.task.validation_step(move(batch, self.device))
            sums = merge_sums([sums, {k: [float(v), float(c)] for k, (v, c) in stats.items()}])
        self.model.train()
        return means(merge_sums(self._gather(sums)))

    def _all_agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (one tiny all-reduce)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _lock_outdir(self) -> None:
        """Rank 0 holds an exclusive lock on OUTDIR/.lock while it trains: a second trainer started
        on the same folder (a rerun while the first still runs) stops instead of interleaving
        checkpoints and logs. Leftovers of checkpoint writes killed midway are removed."""
        import fcntl

        self._lock_file = open(self.outdir / ".lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "unknown"
            raise RuntimeError(f"{self.outdir} is in use by another trainer (pid {holder}); wait for it or stop it "
                               "before starting this one") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        for stale in self.outdir.glob(f".{self.ckpt_path.name}.*.tmp"):
            logger.info("removing %s, left by a checkpoint write that was killed", stale)
            stale.unlink(missing_ok=True)

    def fit(self, resume: bool = True) -> dict:
        """Train to ``max_steps`` (or ``max_minutes``). Returns the last validation stats."""
        self._start(resume)
        self.model.train()
        start_time = time.time()
        bar = tqdm(total=self.cfg.max_steps, initial=self.step, desc=self.outdir.name, disable=self.rank != 0,
                   unit="step", dynamic_ncols=True)
        stop = False
        while self.step < self.cfg.max_steps and not stop:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            self.train_set.epoch = self.epoch  # this epoch's crops (loader workers copy the dataset)
            shares = iter(self._loader(self.train_set, self.sampler))
            for update in zip(*[shares] * self.cfg.accum_grad):  # this process's shares of one update
                if self._update(list(update), bar) is None:  # not one readable utterance in the whole update
                    continue
                for hook in self.update_hooks:
                    hook(self.step)
                stop = self._after_update(start_time)
                if self.step >= self.cfg.max_steps or stop:
                    break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
        bar.close()
        return self._finish()

    def _start(self, resume: bool) -> None:
        """The output folder locked, the checkpoint resumed (or the stale one removed), the resolved
        config written, and a fresh run's random streams seeded (each rank its own)."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            self._lock_outdir()
        if resume:
            self.load_checkpoint()
        elif self.rank == 0:
            for stale in (self.outdir / "train_log.jsonl", self.ckpt_path):
                stale.unlink(missing_ok=True)
        if self.rank == 0:  # written after the resume check: a refused resume leaves the old config
            import yaml

            with open(self.outdir / "config.yaml", "w") as f:
                yaml.safe_dump({"train": asdict(self.cfg), **self.resolved_config}, f, sort_keys=False)
        if self.step == 0:  # dropout, masks: rank 0 draws as a single process would
            torch.manual_seed(self.cfg.seed + 1000 * self.rank)
            random.seed(self.cfg.seed + 1000 * self.rank)

    def _update(self, shares: list[dict], bar: tqdm) -> dict[str, float] | None:
        """One update from this process's ``shares``, logged; None (and no step) when the whole
        update had no readable utterance."""
        t0 = time.time()
        phase = self.phase_of(self.step)
        if phase != self.phase:
            self._enter_phase(phase)
        whole = [self.train_set.samples[i] for i in self.sampler.update_batch(self.epoch, self.batch_in_epoch)]
        lr = self.scheduler.get_last_lr()[0]  # the rate this update uses
        stats = self._train_step(shares, whole)
        self.batch_in_epoch += 1
        if stats is None:
            return None
        self.step += 1
        bar.update(1)
        if self.step % self.cfg.log_every == 0 or self.step == 1:
            bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if k in ("loss", "acc")})
        self._log({"step": self.step, "split": "train", "epoch": self.epoch, "phase": self.phase, "lr": lr,
                   "world": self.world, "accum_grad": self.cfg.accum_grad,
                   "padded_seconds": len(whole) * max(whole) / SAMPLE_RATE, "step_time": time.time() - t0,
                   **stats, **self.counts})
        return stats

    def _after_update(self, start_time: float) -> bool:
        """Validation and checkpoint when due; whether to stop (``max_minutes`` reached)."""
        cfg = self.cfg
        if cfg.valid_every and self.step % cfg.valid_every == 0 and self.step < cfg.max_steps:
            self._log({"step": self.step, "split": "valid", **self.validate()})
        over_time = False
        if cfg.max_minutes > 0 and (self.step % cfg.log_every == 0 or self.world == 1):
            # all ranks stop at the same step, or the others would wait for it forever
            over_time = self._all_agree(time.time() - start_time > 60 * cfg.max_minutes)
        if self.step % cfg.ckpt_every == 0 or self.step >= cfg.max_steps or over_time:
            self.save_checkpoint()
        if over_time:
            logger.warning("stopping at step %d: max_minutes=%.1f reached", self.step, cfg.max_minutes)
        return over_time

    def _finish(self) -> dict:
        """The ranks checked equal, the last validation logged, the folder released. Returns it."""
        if self.world > 1:
            self.check_ranks_agree()
        last_valid = self.validate()
        if last_valid:
            self._log({"step": self.step, "split": "valid", **last_valid})
            logger.info("valid at step %d: %s", self.step, {k: round(v, 4) for k, v in last_valid.items()})
        if any(self.counts.values()):
            logger.warning("over the run: %s", self.counts)
        if self._tb:
            self._tb.close()
        if self.rank == 0:
            self._lock_file.close()  # releases the folder
        if self.world > 1:  # leave together: a rank exiting while others still talk can abort the job
            dist.barrier()
            dist.destroy_process_group()
        return last_valid

    @torch.no_grad()
    def check_ranks_agree(self) -> float:
        """All-gather a checksum of the weights; raise if any rank diverged from rank 0."""
        checksum = torch.tensor([sum(float(p.double().sum()) for p in self.model.parameters())], dtype=torch.float64,
                                device=self.device)
        gathered = [torch.zeros_like(checksum) for _ in range(self.world)]
        dist.all_gather(gathered, checksum)
        values = [float(g) for g in gathered]
        if any(v != values[0] for v in values):
            raise RuntimeError(f"ranks diverged: weight checksums {values}")
        logger.info("rank %d/%d: weights identical on all ranks (checksum %.10g)", self.rank, self.world, values[0])
        return values[0]

    def _all_reduce_grads(self) -> None:
        """Add the gradients of every rank (one flat all-reduce of the trainable parameters' gradients
        and of a has-gradient flag per parameter; a rank with an empty share contributes zeros)."""
        flags = torch.tensor([p.grad is not None for p in self.params], dtype=torch.float32, device=self.device)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in self.params] + [flags])
        dist.all_reduce(flat)
        has = flat[-len(self.params):].tolist()
        offset = 0
        for p, h in zip(self.params, has):
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(p.dtype) if h > 0 else None
            offset += n

    def _train_step(self, shares: list[dict], whole: list[int] | None = None) -> dict[str, float] | None:
        """One update from this process's ``shares`` (micro-batches, some maybe empty) of an update
        whose utterances have ``whole`` samples (default: the shares' own, for one process).

        Each micro-batch back-propagates its summed loss over ``scale`` (about the update's frame
        count, the same on every rank, so that fp16 gradients keep their range); after the gradients
        and counts of every rank are added, the gradient is multiplied by ``scale / total count``: the
        gradient of the update's mean loss. Returns the update's statistics (means over the whole
        update), or None when no utterance of it was readable (no update is made). A non-finite loss
        or gradient norm skips the update (the same decision on every rank: the gradients are the
        same) and is counted; ``max_nonfinite_steps`` in a row stop the run."""
        self.optimizer.zero_grad(set_to_none=True)
        if whole is None:
            whole = [int(n) for b in shares if b["utt"] for n in b["lengths"]]
        scale = max(1.0, sum(whole) / SAMPLE_RATE * FRAMES_PER_SECOND)
        local: dict[str, list] = {}
        utts, samples, bad, cropped = 0, 0, 0, 0
        for batch in shares:
            bad, cropped = bad + batch["bad_utts"], cropped + batch["cropped_utts"]
            if not batch["utt"]:
                continue
            utts, samples = utts + len(batch["utt"]), samples + int(batch["lengths"].sum())
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                terms = self.task.training_step(move(batch, self.device), self.step)
            self.scaler.scale(terms["loss"][0] / scale).backward()
            for k, (v, c) in terms.items():
                acc = local.setdefault(k, [0.0, 0.0])
                acc[0], acc[1] = acc[0] + v.detach().float(), acc[1] + c
        # the one read from the device per update (with the gradient norm below): the statistics
        part = {"sums": {k: [float(v), float(c)] for k, (v, c) in local.items()}, "utts": utts, "samples": samples,
                "bad_utts": bad, "cropped_utts": cropped}
        parts = self._gather(part)
        sums = merge_sums([q["sums"] for q in parts])
        self.counts["bad_utts"] += sum(q["bad_utts"] for q in parts)
        self.counts["cropped_utts"] += sum(q["cropped_utts"] for q in parts)
        if self.counts["bad_utts"] > self.cfg.max_bad_utts:
            raise RuntimeError(f"more than max_bad_utts={self.cfg.max_bad_utts} unreadable utterances skipped "
                               f"(see the warnings above): fix the data dir {self.train_set.data_dir}")
        if self.world > 1:
            self._all_reduce_grads()
        count = sums.get("loss", [0.0, 0.0])[1]
        if count <= 0:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.scaler.unscale_(self.optimizer)
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(scale / count)
        gnorm = torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], self.cfg.grad_clip)
        finite = math.isfinite(float(gnorm))
        if finite:
            self.scaler.step(self.optimizer)
        self.scaler.update()  # fp16: a non-finite step lowers the loss scale
        stats = means(sums)
        if finite:
            self.scheduler.step()
            self.nonfinite_in_a_row = 0
        else:
            self.counts["skipped_updates"] += 1
            self.nonfinite_in_a_row += 1
            logger.warning("step %d: non-finite loss or gradient (loss %s): update skipped (%d in a row)", self.step,
                           stats["loss"], self.nonfinite_in_a_row)
            if self.nonfinite_in_a_row >= self.cfg.max_nonfinite_steps:
                utt_names = [u for b in shares for u in b["utt"]][:4]
                raise FloatingPointError(
                    f"{self.nonfinite_in_a_row} updates in a row had a non-finite loss or gradient (step {self.step}, "
                    f"utterances {utt_names}...): lower lr, use bf16 instead of fp16, or check the data")
        return dict(stats, grad_norm=float(gnorm) if finite else -1.0, batch_utts=sum(q["utts"] for q in parts),
                    batch_seconds=sum(q["samples"] for q in parts) / SAMPLE_RATE)
