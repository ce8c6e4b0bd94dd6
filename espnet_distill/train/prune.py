"""Joint distillation and structured pruning (a distillation config with a ``prune:`` section).

The student starts as a copy of the teacher (every weight; layer-wise heads at the identity).
For ``prune.steps`` updates it learns HardConcrete gates (student/pruning.py) together with its
weights: L = L_reg + alpha L_disc + lambda_1 (e - t) + lambda_2 (e - t)^2, where e is the
expected size and t a target falling from the full size to ``prune.target_params``; the gates and
the multipliers have their own learning rate, and the multipliers ascend. Then the closed
structures are removed (``<outdir>/prune/student.pt``, an ordinary student) and the pruned
student is distilled again for ``train.max_steps`` updates by the caller. Both runs resume.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from espnet_distill.losses import Sum
from espnet_distill.student.export import load_student, save_student
from espnet_distill.student.model import Student
from espnet_distill.student.pruning import Gates, PruneConfig, attach_gates, prune_student

logger = logging.getLogger(__name__)


class PruneTask:
    """A distillation task (train/distill.py's DistillTask) whose loss adds the Lagrangian of the
    student's gates."""

    def __init__(self, base, gates: Gates):
        self.base, self.gates = base, gates
        self.model, self.phase_starts = base.model, base.phase_starts

    def to(self, device) -> "PruneTask":
        self.base.to(device)
        return self

    def trainable_parameters(self, phase: int) -> list[torch.nn.Parameter]:
        return self.base.trainable_parameters(phase)

    def param_groups(self, phase: int) -> list[dict]:
        """The weights at the run's learning rate; the gates and multipliers at ``gate_lr``, no decay."""
        params = self.trainable_parameters(phase)
        gate_ids = {id(p) for p in self.gates.parameters()}
        return [{"params": [p for p in params if id(p) not in gate_ids]},
                {"params": [p for p in params if id(p) in gate_ids], "lr": self.gates.cfg.gate_lr,
                 "weight_decay": 0.0}]

    def training_step(self, batch: dict, step: int) -> dict[str, Sum]:
        """The distillation terms plus the Lagrangian, which enters the summed loss once per frame so
        that the update's mean loss holds it once (whatever the number of processes)."""
        terms = self.base.training_step(batch, step)
        lag, sizes = self.gates.lagrangian(step)
        s, c = terms["loss"]
        terms["loss"] = (s + lag * c, c)
        terms["lagrangian"] = (lag.detach() * c, c)
        terms["expected_mparams"] = (torch.as_tensor(sizes["expected_params"] / 1e6, device=c.device) * c, c)
        terms["target_mparams"] = (torch.as_tensor(sizes["target_params"] / 1e6, device=c.device) * c, c)
        return terms

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, tuple[float, float]]:
        """The distillation statistics of the student with its fixed gates, and its expected size."""
        res = self.base.validation_step(batch)
        n = res["loss"][1]
        res["expected_mparams"] = (float(self.gates.fixed_params + self.gates.expected_params()) / 1e6 * n, n)
        return res


def prune(task, prune_cfg: PruneConfig, train_set, valid_set, train_cfg, outdir: str | Path, resolved: dict,
          resume: bool = True) -> Student:
    """Run the pruning phase of ``task`` (a DistillTask of the teacher's copy) in ``outdir``
    (resuming it), or read its result when it has finished; returns the pruned student (an ordinary
    Student). ``train_cfg`` is the run's TrainConfig, of which ``prune_cfg.steps`` updates are used."""
    from espnet_distill.train.trainer import Trainer, dist_info

    outdir = Path(outdir)
    done = outdir / "student.pt"
    if done.is_file():
        pruned, meta = load_student(done)
        logger.info("pruning finished earlier: %s (%d parameters)", done,
                    meta.get("params", {}).get("total_without_heads", -1))
        return pruned.train()
    student = task.model
    gates = attach_gates(student, prune_cfg)
    logger.info("pruning from %d to %d parameters over %d updates (gates: %d groups)",
                int(gates.fixed_params + gates.full), int(prune_cfg.target_params), prune_cfg.steps, len(gates.groups))
    trainer = Trainer(PruneTask(task, gates), train_set, valid_set,
                      dataclasses.replace(train_cfg, max_steps=prune_cfg.steps), outdir,
                      {**resolved, "prune": prune_cfg.to_dict()})
    valid = trainer.fit(resume=resume)
    student.cpu().eval()
    gates.current_target = prune_cfg.target_params  # the final structure: at the target itself
    pruned = prune_student(student)
    counts = pruned.param_counts()
    if dist_info()[0] == 0:
        save_student(done, pruned, {"params": counts, "steps": trainer.step, "valid": valid,
                                    "target_params": prune_cfg.target_params})
    off = counts["total_without_heads"] / prune_cfg.target_params - 1
    (logger.warning if abs(off) > 0.01 else logger.info)(
        "pruned student: %d parameters, %+.2f%% from the target %d", counts["total_without_heads"], 100 * off,
        int(prune_cfg.target_params))
    return pruned.train()
