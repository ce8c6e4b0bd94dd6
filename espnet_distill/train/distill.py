"""The distillation task (a trainer task, see train/trainer.py).

Steps ``[0, fe_adapt_steps)`` (front-end adaptation, fbank students): only the front-end and
its Linear(D -> D_T) head learn, with L1 to the teacher's hidden[0]; every other parameter
gets no gradient and stays bit-identical. Later steps distill the whole student with
L = L_reg + alpha * L_disc. The two are trainer phases: each has its own AdamW and its own
warm-up and decay over its own steps, or (``fe_adapt_schedule: shared``) one AdamW and one
schedule span both. The teacher runs frozen under no_grad on the same device, in
fp32 or in the AMP dtype (``teacher_precision``); with
``cache_teacher`` its outputs are kept per utterance (fp16 on the CPU) and reused in later
epochs, which is exact because the teacher is deterministic and pad-invariant.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace

import torch

from espnet_distill.config import ConfigError, apply_overrides, check_range, from_dict, read_yaml
from espnet_distill.losses import Sum, at_temperature, disc_loss, frontend_loss, reg_loss
from espnet_distill.student.model import Student, StudentConfig, StudentOutput, init_from_teacher
from espnet_distill.student.pruning import PruneConfig, check_no_sizes, identity_heads, teacher_copy_config
from espnet_distill.teacher.teacher import Teacher, TeacherOutput
from espnet_distill.train.trainer import TrainConfig

logger = logging.getLogger(__name__)


# How the frozen teacher runs when the trainer trains under autocast (train.amp fp16 or bf16; on CPU
# there is no autocast and both are fp32):
#   fp32: outside autocast, in fp32, as s3prl's distiller runs its teacher (the authors' choice);
#   amp:  its weights cast once to the autocast dtype (faster; targets rounded).
TEACHER_PRECISIONS = ("fp32", "amp")
# How the teacher makes the training targets (validation always runs it in eval mode):
#   eval:  dropouts off, the same targets every time (they can be cached; our default);
#   train: its dropouts on (layer drop off), as s3prl's runner leaves it (upstream.train()).
TEACHER_MODES = ("eval", "train")
# The optimizer and learning-rate schedule of front-end adaptation (fe_adapt_steps > 0) and distillation:
#   fresh:  each phase its own AdamW and warm-up + decay (ours: the transformer starts with a warm-up);
#   shared: one AdamW and one warm-up + decay over the whole run, the front-end keeping its moments
#           (the authors' code: one model and optimizer, the switch is in the loss).
FE_ADAPT_SCHEDULES = ("fresh", "shared")


@dataclass
class DistillConfig:
    """The ``distill:`` section."""

    alpha: float = 0.0  # weight of L_disc (0: L_reg only)
    lam: float = 1.0  # weight of the cosine term in L_reg
    fe_adapt_steps: int = 0  # front-end adaptation updates before distillation (fbank students)
    fe_adapt_schedule: str = "fresh"  # FE_ADAPT_SCHEDULES key: fresh | shared (the authors' code)
    cache_teacher: bool = False  # keep the teacher's outputs per utterance (corpora that fit in memory)
    teacher_precision: str = "fp32"  # TEACHER_PRECISIONS key: fp32 (the authors' choice) | amp
    teacher_mode: str = "eval"  # TEACHER_MODES key: eval | train (the authors' code: dropouts on the targets)
    cmvn_utts: int = 500  # utterances for the fbank front-end's global CMVN
    # L_disc's temperature T: None (ours) keeps the logits as they come: the teacher's cosine over its
    # own logit_temp (HuBERT: 0.1), the cosine heads' over the same tau, type 2/3's Linear logits
    # undivided; a number: the authors' rule, every one of them (teacher's and student's) over T
    temperature: float | None = None

    def __post_init__(self) -> None:
        check_range("distill", "alpha", self.alpha, self.alpha >= 0, "0 or more")
        check_range("distill", "lam", self.lam, self.lam >= 0, "0 or more")
        check_range("distill", "fe_adapt_steps", self.fe_adapt_steps, self.fe_adapt_steps >= 0, "0 or more")
        check_range("distill", "cmvn_utts", self.cmvn_utts, self.cmvn_utts >= 1, "at least 1")
        check_range("distill", "temperature", self.temperature, self.temperature is None or self.temperature > 0,
                    "positive, or null (the teacher's logit_temp)")
        check_range("distill", "teacher_precision", self.teacher_precision,
                    self.teacher_precision in TEACHER_PRECISIONS, " or ".join(TEACHER_PRECISIONS))
        check_range("distill", "fe_adapt_schedule", self.fe_adapt_schedule,
                    self.fe_adapt_schedule in FE_ADAPT_SCHEDULES, " or ".join(FE_ADAPT_SCHEDULES))
        check_range("distill", "teacher_mode", self.teacher_mode, self.teacher_mode in TEACHER_MODES,
                    " or ".join(TEACHER_MODES))
        if self.teacher_mode == "train" and self.cache_teacher:
            raise ConfigError("distill.cache_teacher: true needs distill.teacher_mode: eval (cached targets would "
                              "keep one draw of the teacher's dropouts)")

    @classmethod
    def from_dict(cls, d: dict | None) -> "DistillConfig":
        return from_dict(cls, d or {}, "distill")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class InitConfig:
    """The ``init:`` section: what a student copies from the teacher before distillation."""

    frontend: bool = False  # the waveform CNN (CNN students of the same shape)
    pos_conv: bool = False  # the positional convolution (and, with encoder_layer_norm, the encoder's LayerNorm)
    # the LayerNorm between the positional conv and the layers: the copied layers were trained on its
    # output, so it is copied with them by default; the authors' fork leaves it out (docs/fidelity.md)
    encoder_layer_norm: bool = True
    layers: dict = field(default_factory=dict)  # {student layer: teacher layer}, 1-based

    def __post_init__(self) -> None:
        try:
            self.layers = {int(k): int(v) for k, v in self.layers.items()}
        except (TypeError, ValueError):
            raise ValueError(f"init.layers: expected {{student layer: teacher layer}} integers, got {self.layers!r}") \
                from None

    @classmethod
    def from_dict(cls, d: dict | None) -> "InitConfig":
        return from_dict(cls, d or {}, "init")

    def to_dict(self) -> dict:
        return asdict(self)


SECTIONS = ("student", "init", "distill", "train", "prune")


@dataclass
class DistillRunConfig:
    """A distillation config file (``conf/distill/*.yaml``), every section checked.

    ``student`` stays a mapping: :func:`build_student` completes it with the teacher's sizes
    (``teacher_dim``, ``teacher_layers``, the codebook) before it becomes a StudentConfig. With
    ``prune.target_params`` the student is the teacher's own architecture, pruned (train/prune.py).
    """

    student: dict
    init: InitConfig
    distill: DistillConfig
    train: TrainConfig
    prune: PruneConfig = field(default_factory=PruneConfig)

    def __post_init__(self) -> None:
        if self.prune.enabled:
            try:
                check_no_sizes(self.student)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        StudentConfig.from_dict(dict(self.student))  # names and types now, before any teacher is loaded
        if self.prune.enabled and (self.init.frontend or self.init.pos_conv or self.init.layers):
            raise ConfigError("init: a pruned student starts as a copy of the whole teacher; remove the init section")

    @classmethod
    def from_dict(cls, conf: dict) -> "DistillRunConfig":
        unknown = sorted(set(conf) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown sections {unknown} (valid: {list(SECTIONS)})")
        return from_dict(cls, {k: conf.get(k) or {} for k in SECTIONS}, "distillation config")

    @classmethod
    def load(cls, path, overrides: list[str] = ()) -> "DistillRunConfig":
        """The config of a YAML file with ``SECTION.KEY=VALUE`` overrides applied."""
        return cls.from_dict(apply_overrides(read_yaml(path), list(overrides)))


def build_student(conf: DistillRunConfig | dict, teacher: Teacher) -> tuple[Student, dict]:
    """Student of ``conf.student`` sized for ``teacher``, initialised per ``conf.init``
    (``conf``: a DistillRunConfig, or the mapping of a config file, checked the same way).

    Returns (student, report): ``report["copied"]`` / ``["skipped"]`` name the teacher weights
    that were (not) copied."""
    if isinstance(conf, dict):
        conf = DistillRunConfig.from_dict(conf)
    scfg = dict(conf.student)
    if conf.prune.enabled:
        scfg = teacher_copy_config(teacher.to_hubert().cfg, scfg)
    scfg.update(teacher_dim=teacher.dim, teacher_layers=teacher.num_layers)
    embs = teacher.label_embeddings()
    if embs is not None:
        scfg.update(num_classes=embs.shape[0], codebook_dim=embs.shape[1], tau=teacher.logit_temp)
    elif scfg.get("disc_head"):
        logger.info("teacher has no codebook head: the student gets no L_disc head")
        scfg["disc_head"] = None
    student = Student(StudentConfig.from_dict(scfg), label_embs=embs)
    report = {"copied": [], "skipped": []}
    if conf.prune.enabled:  # every weight of the teacher; prediction heads at the identity
        every = {i: i for i in range(1, teacher.num_layers + 1)}
        report = init_from_teacher(student, teacher.hubert_state_dict(), True, True, every)
        identity_heads(student)
        return student, report
    init = conf.init
    for s_layer, t_layer in init.layers.items():
        check_range("init", "layers", init.layers, 1 <= s_layer <= student.cfg.num_layers,
                    f"student layers in 1..{student.cfg.num_layers} (got {s_layer})")
        check_range("init", "layers", init.layers, 1 <= t_layer <= teacher.num_layers,
                    f"teacher layers in 1..{teacher.num_layers} (got {t_layer})")
    wanted = init.frontend or init.pos_conv or init.layers
    state = teacher.hubert_state_dict()
    if wanted and state is not None:
        report = init_from_teacher(student, state, init.frontend, init.pos_conv, init.layers,
                                   encoder_layer_norm=init.encoder_layer_norm)
        if init.frontend and not any(k.startswith("frontend.") for k in report["copied"]):
            raise ConfigError(f"init.frontend = True: expected a front-end with tensors of the teacher's shapes; "
                              f"none matched (skipped {report['skipped'][:3]}): set init.frontend: false, or give "
                              "the student the teacher's conv_layers")
    elif wanted:
        logger.warning("this teacher does not expose fairseq-named weights: student starts from random weights")
    return student, report


def l_disc_weight(alpha: float, teacher: Teacher) -> float:
    """``distill.alpha`` as a run can use it: 0 when the teacher has no codebook head to give L_disc
    its targets (Hugging Face checkpoints, WavLM), said in one warning; ``alpha`` otherwise."""
    if alpha > 0 and not teacher.has_codebook:
        logger.warning("L_disc off: teacher '%s' (%s) has no codebook head (final_proj + label embeddings) to give "
                       "its targets, so distill.alpha %g is taken as 0 and L_reg alone trains the student",
                       teacher.name, teacher.layout, alpha)
        return 0.0
    return alpha


class TeacherCache:
    """Per-utterance teacher outputs (only the layers the student predicts, and the logits)."""

    def __init__(self, layers: list[int], dtype=torch.float16):
        self.layers, self.dtype = sorted(set(layers)), dtype
        self.store: dict[str, tuple[list[torch.Tensor], torch.Tensor | None]] = {}

    def get(self, teacher: Teacher, batch: dict) -> TeacherOutput:
        utts = batch["utt"]
        device = batch["wav"].device
        if not all(u in self.store for u in utts):
            out = teacher(batch["wav"], batch["lengths"], utt_ids=utts)
            for i, u in enumerate(utts):
                n = int(out.mask[i].sum())
                hs = [out.hidden[layer][i, :n].to("cpu", self.dtype) for layer in self.layers]
                lg = out.logits[i, :n].to("cpu", self.dtype) if out.logits is not None else None
                self.store[u] = (hs, lg)
            # fall through: serve from the cache, so that targets are the same (fp16-rounded)
            # in every epoch, including after a resume that starts with an empty cache
        lens = [self.store[u][0][0].shape[0] for u in utts]
        t = max(lens)
        mask = torch.arange(t, device=device)[None] < torch.tensor(lens, device=device)[:, None]
        hidden: list[torch.Tensor | None] = [None] * (max(self.layers) + 1)
        for j, layer in enumerate(self.layers):
            h = torch.zeros(len(utts), t, self.store[utts[0]][0][j].shape[-1], device=device)
            for i, u in enumerate(utts):
                h[i, : lens[i]] = self.store[u][0][j].to(device, torch.float32)
            hidden[layer] = h
        logits = None
        if self.store[utts[0]][1] is not None:
            logits = torch.zeros(len(utts), t, self.store[utts[0]][1].shape[-1], device=device)
            for i, u in enumerate(utts):
                logits[i, : lens[i]] = self.store[u][1].to(device, torch.float32)
        return TeacherOutput(hidden, mask, logits)


def aligned(out: StudentOutput, t: TeacherOutput) -> tuple[dict, dict, torch.Tensor, int]:
    """The student's predictions and the teacher's targets on the frames both have.

    ``out``: a StudentOutput (``preds`` {teacher layer: (B, T_s, D_T)}, ``mask`` (B, T_s)); ``t``:
    the teacher's outputs (``hidden`` [(B, T_t, D_T)], ``mask`` (B, T_t)). Returns (preds, targets,
    mask, n): every tensor cut to n = min(T_s, T_t) frames, mask = both masks (B, n)."""
    n = min(out.mask.shape[1], t.mask.shape[1])
    mask = out.mask[:, :n] & t.mask[:, :n]
    preds = {k: v[:, :n] for k, v in out.preds.items()}
    return preds, {k: t.hidden[k][:, :n] for k in preds}, mask, n


class DistillTask:
    """L_reg + alpha * L_disc of ``student`` against the frozen ``teacher``, as ``conf`` (the
    ``distill:`` section, checked there; keyword ``overrides`` replace its fields) says. Without a
    codebook head on the teacher, alpha is taken as 0 (:func:`l_disc_weight`)."""

    def __init__(self, student: Student, teacher: Teacher, conf: DistillConfig | None = None, **overrides):
        conf = replace(conf or DistillConfig(), **overrides)
        self.conf = conf = replace(conf, alpha=l_disc_weight(conf.alpha, teacher))
        self.model = student
        self.teacher = teacher
        self.teacher_precision = conf.teacher_precision
        self._teacher_dtype = torch.float32
        self.alpha, self.lam, self.fe_adapt_steps = conf.alpha, conf.lam, conf.fe_adapt_steps
        if self.alpha > 0 and student.disc_head is None:
            raise ConfigError("distill.alpha > 0 needs a student with a disc_head "
                              "(type1, type2, type3 or type3_cosine)")
        if self.fe_adapt_steps > 0 and student.fe_head is None:
            raise ConfigError("distill.fe_adapt_steps > 0 needs a student with the fbank front-end")
        layers = [0] + list(student.pred_head(self._dummy_hidden()).keys()) if conf.cache_teacher else []
        self.cache = TeacherCache(layers) if conf.cache_teacher else None
        # the trainer's phases: front-end adaptation, then the whole student; under fe_adapt_schedule
        # fresh each with its own optimizer and warm-up + decay (a randomly initialised transformer
        # then does not start at the full learning rate because the front-end had the warm-up)
        self.phase_starts = [0, self.fe_adapt_steps] if self.fe_adapt_steps > 0 else [0]
        self.shared_schedule = conf.fe_adapt_schedule == "shared"

    def trainable_parameters(self, phase: int) -> list[torch.nn.Parameter]:
        """Front-end adaptation: the front-end and its Linear head. Distillation: everything the
        loss reaches (not the adaptation head; not the L_disc head when alpha is 0)."""
        if self.fe_adapt_steps > 0 and phase == 0:
            return self.model.frontend_parameters()
        skip = ("fe_head.",) + (("disc_head.",) if self.alpha == 0 else ())
        return [p for name, p in self.model.named_parameters() if not name.startswith(skip)]

    def _dummy_hidden(self) -> list[torch.Tensor]:
        cfg = self.model.cfg
        return [torch.zeros(1, 1, cfg.dim) for _ in range(cfg.num_layers + 1)]

    def to(self, device) -> "DistillTask":
        self.teacher.to(device)
        return self

    def teacher_outputs(self, batch: dict, num_layers: int | None = None, training: bool = False) -> TeacherOutput:
        """The teacher's outputs for a batch (from the cache when there is one); ``num_layers=0``:
        its layer-0 input only (front-end adaptation needs nothing else); ``training``: targets of
        an update, made with the teacher's dropouts on under ``teacher_mode: train``."""
        device = batch["wav"].device.type
        dtype = torch.float32
        if self.teacher_precision == "amp" and torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):  # the teacher's precision is ours to choose, not autocast's
            if self.cache is not None:
                return self.cache.get(self.teacher, batch)
            if dtype != self._teacher_dtype:  # cast once, not on every step
                self.teacher.to(dtype)
                self._teacher_dtype = dtype
            dropout = self.teacher.dropout_on() if training and self.conf.teacher_mode == "train" else nullcontext()
            with torch.no_grad(), dropout:  # not inference mode: the targets enter the student's autograd graph
                return self.teacher(batch["wav"].to(dtype), batch["lengths"], utt_ids=batch["utt"],
                                    num_layers=num_layers, lengths_cpu=batch.get("lengths_cpu"))

    def _disc_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor) -> Sum:
        """L_disc of the student's head logits against the teacher's (B, T, C), both at
        ``distill.temperature`` (as they come when it is null)."""
        head, temperature = self.model.disc_head, self.conf.temperature
        return disc_loss(at_temperature(student_logits, head.divisor, temperature),
                         at_temperature(teacher_logits, self.teacher.logit_temp, temperature), mask, head.loss)

    def training_step(self, batch: dict, step: int) -> dict[str, Sum]:
        """The update's terms as Sums over this batch's valid frames: ``loss`` (differentiable) and
        detached statistics (``reg``, ``l1_<n>``, ``cos_<n>``, ``disc``; ``fe_l1`` while adapting)."""
        t = self.teacher_outputs(batch, num_layers=0 if step < self.fe_adapt_steps else None, training=True)
        if step < self.fe_adapt_steps:
            pred, mask = self.model.frontend_adapt(batch["wav"], batch["lengths"])
            n = min(pred.shape[1], t.mask.shape[1])
            loss = frontend_loss(pred[:, :n], t.hidden[0][:, :n], mask[:, :n] & t.mask[:, :n])
            return {"loss": loss, "fe_l1": (loss[0].detach(), loss[1])}
        out = self.model(batch["wav"], batch["lengths"])
        preds, targets, mask, n = aligned(out, t)
        loss, stats = reg_loss(preds, targets, mask, self.lam)
        if self.alpha > 0:
            ld = self._disc_loss(out.disc_logits[:, :n], t.logits[:, :n], mask)
            loss = (loss[0] + self.alpha * ld[0], loss[1])  # one frame count for both terms
            stats["disc"] = (ld[0].detach(), ld[1])
        return {"loss": loss, **stats}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, tuple[float, float]]:
        """Frame sums of L1 and cosine to every predicted teacher layer, L_disc (and the agreement
        of its top class with the teacher's), the front-end L1, and the total loss."""
        t = self.teacher_outputs(batch)
        out = self.model(batch["wav"], batch["lengths"])
        preds, targets, mask, n = aligned(out, t)
        loss, stats = reg_loss(preds, targets, mask, self.lam)
        res = dict(stats)
        total = loss[0]
        if out.disc_logits is not None and t.logits is not None:
            ld = self._disc_loss(out.disc_logits[:, :n], t.logits[:, :n], mask)
            res["disc"] = ld
            total = total + self.alpha * ld[0]
            agree = (out.disc_logits[:, :n].argmax(-1) == t.logits[:, :n].argmax(-1))[mask].float().sum()
            res["disc_top1_agree"] = (agree, loss[1])
        if self.model.fe_head is not None:
            pred, _ = self.model.frontend_adapt(batch["wav"], batch["lengths"])
            k = min(pred.shape[1], n)
            res["fe_l1"] = frontend_loss(pred[:, :k], t.hidden[0][:, :k], mask[:, :k])
        res["loss"] = (total, loss[1])
        return {name: (float(s), float(c)) for name, (s, c) in res.items()}


def load_teacher(teacher_yaml: str) -> tuple[Teacher, dict]:
    """The teacher of a teacher YAML (``exp/teacher/teacher.yaml``) and that YAML's mapping; errors
    name the file."""
    from espnet_distill.checkpoint_io import CheckpointError
    from espnet_distill.teacher.teacher import TeacherError, build_teacher

    try:
        tconf = read_yaml(teacher_yaml)
        return build_teacher(tconf), tconf
    except (TeacherError, CheckpointError, ConfigError) as e:
        raise type(e)(f"{teacher_yaml}: {e}") from None


def distill(conf: DistillRunConfig, config_path: str, teacher_yaml: str, train_dir: str, valid_dir: str, outdir: str,
            *, resume: bool = True, init_only: bool = False) -> dict | None:
    """Distil the student of ``conf`` (read from ``config_path``) from the teacher of ``teacher_yaml``
    on the Kaldi dirs, resuming from ``outdir``'s checkpoint; writes ``student.pt`` (and
    ``student.distiller_local.pt`` where s3prl's distiller can hold it) and ``summary.json``, and
    returns the summary (None on ranks other than 0). ``init_only``: writes the initialised,
    undistilled student (its CMVN estimated) and stops. Errors name the file they come from."""
    from pathlib import Path

    from espnet_distill.data.audio import FRAME_WINDOW
    from espnet_distill.student.export import save_student
    from espnet_distill.student.frontend import FbankFrontend, fit_cmvn
    from espnet_distill.train.trainer import Trainer, dist_info

    teacher, tconf = load_teacher(teacher_yaml)
    torch.manual_seed(conf.train.seed)
    try:
        student, init_report = build_student(conf, teacher)
    except (ValueError, TypeError) as e:  # a front-end or head name, a layer map, a shape the teacher cannot feed
        raise ConfigError(f"{config_path}: {e}") from None
    train_set, valid_set = conf.train.datasets(train_dir, valid_dir,
                                               min_samples=max(teacher.receptive_field, FRAME_WINDOW))
    task = DistillTask(student, teacher, conf.distill)
    dconf = task.conf  # alpha as the teacher allows it
    resolved = {"student": student.cfg.to_dict(), "init": conf.init.to_dict(), "distill": dconf.to_dict(),
                "teacher": tconf, "data": {"train": train_dir, "valid": valid_dir}}
    out = Path(outdir)
    if conf.prune.enabled and not init_only:
        from espnet_distill.train.prune import prune

        student = prune(task, conf.prune, train_set, valid_set, conf.train, out / "prune", resolved, resume)
        resolved["student"] = student.cfg.to_dict()
        task = DistillTask(student, teacher, dconf)
    if isinstance(student.frontend, FbankFrontend):
        fit_cmvn(student.frontend, train_set, dconf.cmvn_utts)
    counts = student.param_counts()
    logger.info("student: %s", counts)
    if init_only:
        out.mkdir(parents=True, exist_ok=True)
        save_student(out / "student.pt", student.cpu(), {"params": counts, "steps": 0, "init_only": True})
        logger.info("wrote the undistilled student to %s", out / "student.pt")
        return None
    trainer = Trainer(task, train_set, valid_set, conf.train, out, resolved)
    valid = trainer.fit(resume=resume)
    if dist_info()[0] != 0:
        return None
    return write_results(out, student.cpu(), trainer.step, valid, conf, dconf, tconf, init_report,
                         teacher.mask_embedding())


def with_teacher_mask_emb(meta: dict, mask_emb: torch.Tensor | None, dim: int) -> dict:
    """A student file's ``meta`` with the teacher's pretrained mask embedding (``teacher_mask_emb``)
    where it has one of the student's width: the authors fine-tune their students in a HuBERT
    checkpoint whose weights the student's overwrite, so masked frames get HuBERT's embedding
    (``frontend_conf.reuse_mask_emb``)."""
    if mask_emb is None or mask_emb.shape != (dim,):
        return meta
    return {**meta, "teacher_mask_emb": mask_emb.detach().float().cpu().clone()}


def write_results(out, student: Student, steps: int, valid: dict, conf: DistillRunConfig, dconf: DistillConfig,
                  tconf: dict, init_report: dict, teacher_mask_emb: torch.Tensor | None = None) -> dict:
    """``out/student.pt``, ``out/student.distiller_local.pt`` (where s3prl's distiller can hold the
    student) and ``out/summary.json`` of a finished distillation; returns the summary."""
    import json

    from espnet_distill.checkpoint_io import CheckpointError
    from espnet_distill.student.export import export_distiller_local, save_student

    counts = student.param_counts()
    meta = {"params": counts, "steps": steps, "valid": valid, "teacher": tconf}
    save_student(out / "student.pt", student, with_teacher_mask_emb(meta, teacher_mask_emb, student.cfg.dim))
    exported = None
    try:
        export_distiller_local(student, out / "student.distiller_local.pt")
        exported = str(out / "student.distiller_local.pt")
    except CheckpointError as e:
        logger.info("not exported to distiller_local: %s", e)
    per_layer = {k: v for k, v in valid.items() if k.startswith(("l1_", "cos_"))}
    summary = {"params": counts, "steps": steps, "alpha": dconf.alpha,
               "init_copied": len(init_report["copied"]), "valid": valid, "valid_per_layer": per_layer,
               "distiller_local": exported}
    if conf.prune.enabled:
        summary["prune"] = {"target_params": conf.prune.target_params, "steps": conf.prune.steps,
                            "off_target": counts["total_without_heads"] / conf.prune.target_params - 1}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    logger.info("summary: %s", json.dumps(summary))
    return summary
