"""A small step-based trainer shared by teacher pretraining and distillation.

The trainer owns the loop; a *task* owns the model and the loss:

    class MyTask:
        model: nn.Module                                  # everything that is trained and saved
        def training_step(self, batch, step) -> (loss, {"name": float})
        def validation_step(self, batch) -> {"name": (sum, count)}

Features: AdamW with linear warmup and linear decay, gradient clipping, fp16/bf16
autocast on GPU, data parallelism under torchrun (nccl on GPU, gloo on CPU: weights
broadcast from rank 0, gradients averaged by one all-reduce per step), length-bucketed batches,
atomic checkpoints every N steps holding model, optimizer, scheduler, scaler, RNG states and
the data position, exact ``resume``, tqdm progress, every loss term per step in
``train_log.jsonl`` (and TensorBoard when installed), and the resolved config beside
the checkpoint.

Fault injection for tests: with ``ESPNET_DISTILL_KILL_AT_STEP=N`` in the environment the
process SIGKILLs itself right after the update of step N and before that step's checkpoint
is written, as a crash or an out-of-memory kill would; the next run must resume exactly.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from espnet_distill.config import from_dict
from espnet_distill.data.dataset import AudioDataset, BucketBatches, collate
from espnet_distill.teacher.checkpoints import atomic_save, safe_load

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    max_steps: int = 1000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1e-6
    warmup_ratio: float = 0.07
    min_lr_ratio: float = 0.0
    grad_clip: float = 5.0
    max_batch_seconds: float = 60.0
    max_batch_size: int | None = None
    max_utt_seconds: float = 20.0
    amp: str = "none"  # none | fp16 | bf16 (autocast on GPU only)
    seed: int = 0
    log_every: int = 10
    valid_every: int = 0  # 0: only at the end
    ckpt_every: int = 100
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda
    max_minutes: float = 0.0  # stop early (and checkpoint) after this wall time; 0 = no limit
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return from_dict(cls, d, "train")


class Task(Protocol):
    model: nn.Module

    def training_step(self, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]: ...

    def validation_step(self, batch: dict) -> dict[str, tuple[float, float]]: ...


def _kill_at_step() -> int:
    """The step named by ``ESPNET_DISTILL_KILL_AT_STEP`` (fault injection for tests), or -1."""
    value = os.environ.get("ESPNET_DISTILL_KILL_AT_STEP", "")
    return int(value) if value.strip() else -1


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
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """Runs a task for ``cfg.max_steps`` steps; see the module docstring."""

    def __init__(self, task: Task, train_set: AudioDataset, valid_set: AudioDataset | None, cfg: TrainConfig,
                 outdir: str | os.PathLike, resolved_config: dict | None = None):
        self.task, self.cfg, self.outdir = task, cfg, Path(outdir)
        self.rank, self.world, local_rank = dist_info()
        self.device = pick_device(cfg.device, local_rank)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        task.model.to(self.device)
        if hasattr(task, "to"):
            task.to(self.device)
        self.model = task.model
        if self.world > 1:  # every rank starts from rank 0's weights
            for t in list(self.model.parameters()) + list(self.model.buffers()):
                dist.broadcast(t.data, 0)
        self.train_set, self.valid_set = train_set, valid_set
        self.sampler = BucketBatches(train_set.samples, cfg.max_batch_seconds, True, cfg.seed, self.rank, self.world,
                                     cfg.max_batch_size)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        warmup = int(round(cfg.warmup_ratio * cfg.max_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_linear(s, cfg.max_steps, warmup, cfg.min_lr_ratio))
        self.amp_dtype = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.amp]
        if self.device.type != "cuda":
            self.amp_dtype = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.resolved_config = resolved_config or {}
        self._tb = None

    # ------------------------------------------------------------------ checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.outdir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        state = {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "config": self.resolved_config, "train": asdict(self.cfg),
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
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        py = state["rng"]["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
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

                self._tb = SummaryWriter(str(self.outdir / "tensorboard"))
            except Exception:  # tensorboard not installed
                self._tb = False
        if self._tb:
            for k, v in record.items():
                if k not in ("step", "split") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{record.get('split', 'train')}/{k}", v, record["step"])

    # ------------------------------------------------------------------ loops
    def _loader(self, dataset, sampler):
        # a private generator: creating a loader must not draw from the global RNG, or a run
        # resumed mid-epoch would see other dropout and masks than an uninterrupted one
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                           num_workers=self.cfg.num_workers, generator=torch.Generator())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.valid_set is None:
            return {}
        self.model.eval()
        sums: dict[str, list[float]] = {}
        sampler = BucketBatches(self.valid_set.samples, self.cfg.max_batch_seconds, False, 0, self.rank, self.world,
                                self.cfg.max_batch_size)
        for batch in self._loader(self.valid_set, sampler):
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                stats = self.task.validation_step(move(batch, self.device))
            for k, (s, c) in stats.items():
                acc = sums.setdefault(k, [0.0, 0.0])
                acc[0] += float(s)
                acc[1] += float(c)
        if self.world > 1:
            keys = sorted(sums)
            t = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self.device)
            dist.all_reduce(t)
            sums = {k: t[i].tolist() for i, k in enumerate(keys)}
        self.model.train()
        return {k: s / max(c, 1e-9) for k, (s, c) in sums.items()}

    def fit(self, resume: bool = True) -> dict:
        """Train to ``max_steps``. Returns the last validation stats."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            import yaml

            with open(self.outdir / "config.yaml", "w") as f:
                yaml.safe_dump({"train": asdict(self.cfg), **self.resolved_config}, f, sort_keys=False)
        if resume:
            self.load_checkpoint()
        elif self.rank == 0:
            for stale in (self.outdir / "train_log.jsonl", self.ckpt_path):
                stale.unlink(missing_ok=True)
        if self.step == 0:
            torch.manual_seed(self.cfg.seed)
            random.seed(self.cfg.seed)
        self.model.train()
        start_time = time.time()
        kill_at = _kill_at_step()
        bar = tqdm(total=self.cfg.max_steps, initial=self.step, desc=self.outdir.name, disable=self.rank != 0,
                   unit="step", dynamic_ncols=True)
        last_valid: dict = {}
        stop = False
        while self.step < self.cfg.max_steps and not stop:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            for batch in self._loader(self.train_set, self.sampler):
                t0 = time.time()
                stats = self._train_step(move(batch, self.device))
                self.step += 1
                self.batch_in_epoch += 1
                bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == 1:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if k in ("loss", "acc")})
                self._log({"step": self.step, "split": "train", "epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0],
                           "batch_utts": len(batch["utt"]), "batch_seconds": float(batch["lengths"].sum()) / 16000,
                           "step_time": time.time() - t0, **stats})
                if self.cfg.valid_every and self.step % self.cfg.valid_every == 0 and self.step < self.cfg.max_steps:
                    last_valid = self.validate()
                    self._log({"step": self.step, "split": "valid", **last_valid})
                if self.step == kill_at:
                    logger.warning("ESPNET_DISTILL_KILL_AT_STEP=%d: killing this process", self.step)
                    os.kill(os.getpid(), signal.SIGKILL)
                over_time = self.cfg.max_minutes > 0 and time.time() - start_time > 60 * self.cfg.max_minutes
                if self.step % self.cfg.ckpt_every == 0 or self.step >= self.cfg.max_steps or over_time:
                    self.save_checkpoint()
                if over_time:
                    logger.warning("stopping at step %d: max_minutes=%.1f reached", self.step, self.cfg.max_minutes)
                    stop = True
                if self.step >= self.cfg.max_steps or stop:
                    break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
        bar.close()
        if self.world > 1:
            self.check_ranks_agree()
        last_valid = self.validate()
        if last_valid:
            self._log({"step": self.step, "split": "valid", **last_valid})
            logger.info("valid at step %d: %s", self.step, {k: round(v, 4) for k, v in last_valid.items()})
        if self._tb:
            self._tb.close()
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

    def _average_gradients(self) -> None:
        """Data parallelism: one all-reduce of all gradients (flattened), divided by the world size.
        Every rank computes gradients for the same parameters (the tasks are deterministic in that)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    def _train_step(self, batch: dict) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss, stats = self.task.training_step(batch, self.step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at step {self.step} (utterances {batch['utt'][:4]}...)")
        self.scaler.scale(loss).backward()
        if self.world > 1:
            self._average_gradients()
        self.scaler.unscale_(self.optimizer)
        gnorm = torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None],
                                               self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        stats = dict(stats, loss=float(loss.detach()), grad_norm=float(gnorm) if math.isfinite(float(gnorm)) else -1.0)
        return stats
