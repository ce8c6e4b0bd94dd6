"""The trainer with a small task: phases with their own warm-up, non-finite updates skipped,
global batches divided over processes, unreadable audio skipped and stale durations cropped;
and, on a tiny pretraining run, exact resume after a kill, refusal of another config's checkpoint,
and two-process DDP (also killed and resumed)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import TINY_PRETRAIN_CONF, make_data_dir, pretrain_cmd
from torch import nn

from espnet_distill.checkpoint_io import safe_load
from espnet_distill.data.audio import AudioError
from espnet_distill.data.dataset import AudioDataset, BucketBatches, split_shares
from espnet_distill.train.trainer import TrainConfig, Trainer, no_decay_groups


class ToyTask:
    """Two linear layers on 10 ms frame energies; ``nan_steps``: steps whose loss is NaN;
    ``phase_starts``: [0, K] trains only ``first`` before step K."""

    def __init__(self, nan_steps=(), phase_starts=(0,)):
        torch.manual_seed(0)
        self.model = nn.ModuleDict({"first": nn.Linear(160, 8), "second": nn.Linear(8, 1)})
        self.nan_steps = set(nan_steps)
        self.phase_starts = list(phase_starts)

    def trainable_parameters(self, phase):
        if len(self.phase_starts) > 1 and phase == 0:
            return list(self.model["first"].parameters())
        return list(self.model.parameters())

    def _loss(self, batch):
        """(sum over 10 ms frames of the squared output, frames)."""
        frames = batch["wav"][:, : batch["wav"].shape[1] // 160 * 160].reshape(len(batch["utt"]), -1, 160)
        out = self.model["second"](self.model["first"](frames)).pow(2)
        return out.sum(), torch.tensor(float(out.numel()))

    def training_step(self, batch, step):
        total, count = self._loss(batch)
        if step in self.nan_steps:
            total = total * float("nan")
        return {"loss": (total, count)}

    def validation_step(self, batch):
        total, count = self._loss(batch)
        return {"loss": (float(total), float(count))}


@pytest.fixture
def toy_dir(tmp_path):
    return make_data_dir(tmp_path, {f"spk{i % 2}-{i:03d}": (f"spk{i % 2}", "a b") for i in range(6)})


def make_trainer(task, data_dir, outdir, **train):
    cfg = TrainConfig.from_dict({"max_steps": 8, "lr": 0.01, "warmup_ratio": 0.0, "max_batch_seconds": 1.0,
                                 "ckpt_every": 100, "log_every": 1, **train})
    ds = AudioDataset(data_dir, max_seconds=10, skip_bad_audio=cfg.skip_bad_audio)
    return Trainer(task, ds, None, cfg, outdir)


def run(task, data_dir, outdir, **train):
    trainer = make_trainer(task, data_dir, outdir, **train)
    trainer.fit(resume=False)
    log = [json.loads(line) for line in (outdir / "train_log.jsonl").read_text().splitlines()]
    return trainer, [r for r in log if r["split"] == "train"]


def test_nonfinite_updates_are_skipped_and_counted(toy_dir, tmp_path):
    task = ToyTask()
    weights = []
    orig = task.training_step

    def spy(batch, step):
        weights.append({k: v.clone() for k, v in task.model.state_dict().items()})
        return orig(batch, step)

    task.nan_steps = {2, 3}
    task.training_step = spy
    trainer, log = run(task, toy_dir, tmp_path / "run")
    assert trainer.counts["skipped_updates"] == 2
    assert log[-1]["skipped_updates"] == 2
    assert [r["grad_norm"] for r in log][2:4] == [-1.0, -1.0]
    for k in weights[2]:  # the NaN steps changed nothing
        assert torch.equal(weights[2][k], weights[4][k])
        assert not torch.equal(weights[1][k], weights[2][k])
    assert all(math.isfinite(float(p.sum())) for p in task.model.parameters())
    with pytest.raises(FloatingPointError, match="3 updates in a row had a non-finite loss"):
        run(ToyTask(nan_steps=range(2, 8)), toy_dir, tmp_path / "run2", max_nonfinite_steps=3)


def test_each_phase_has_its_own_warmup_and_parameters(toy_dir, tmp_path):
    task = ToyTask(phase_starts=(0, 4))
    second = {k: v.clone() for k, v in task.model["second"].state_dict().items()}
    seen = []
    orig = task.training_step

    def spy(batch, step):
        if step == 4:
            seen.extend(torch.equal(v, second[k]) for k, v in task.model["second"].state_dict().items())
        return orig(batch, step)

    task.training_step = spy
    _, log = run(task, toy_dir, tmp_path / "run", max_steps=10, warmup_ratio=0.5)
    lrs = [r["lr"] for r in log]
    # phase 0: 4 steps, 2 of warm-up; phase 1: 6 steps, 3 of warm-up, starting again from lr / 3
    assert lrs[0] == pytest.approx(0.01 / 2)
    assert lrs[1] == pytest.approx(0.01)
    assert [r["phase"] for r in log] == [0] * 4 + [1] * 6
    assert lrs[4] == pytest.approx(0.01 / 3)
    assert lrs[5] == pytest.approx(0.02 / 3)
    assert lrs[6] == pytest.approx(0.01)
    assert seen
    assert all(seen)  # the second layer did not move during phase 0


def test_an_update_is_formed_whole_then_split_over_processes():
    cfg = TrainConfig.from_dict({"global_batch_seconds": 720, "global_batch_size": 12})
    assert cfg.update_budget(1) == cfg.update_budget(5) == cfg.update_budget(16) == (720, 12)
    per_process = TrainConfig.from_dict({"max_batch_seconds": 30, "max_batch_size": 4, "accum_grad": 2})
    assert per_process.update_budget(8) == (30 * 16, 4 * 16)  # per process and micro-batch
    assert TrainConfig.from_dict({"max_batch_seconds": 30}).update_budget(8) == (240, None)
    assert [len(s) for s in split_shares(list(range(12)), 5)] == [3, 3, 2, 2, 2]
    assert [len(s) for s in split_shares(list(range(12)), 16)] == [1] * 12 + [0] * 4
    assert sum(split_shares(list(range(7)), 3), []) == list(range(7))  # contiguous, in order
    lengths = [16000 * (1 + i % 7) for i in range(40)]
    one = BucketBatches(lengths, 30, seed=3, max_batch_size=12)
    for world, accum in ((2, 1), (5, 1), (3, 2), (16, 1)):
        ranks = [list(BucketBatches(lengths, 30, seed=3, rank=r, world=world, max_batch_size=12, accum_grad=accum))
                 for r in range(world)]
        assert all(len(r) == len(one) * accum for r in ranks)
        for u, batch in enumerate(one):  # each update: the same utterances, shared out in order
            shares = [ranks[r][u * accum + m] for m in range(accum) for r in range(world)]
            assert sum(shares, []) == batch
    with pytest.raises(ValueError, match=r"train.accum_grad = 0: expected at least 1"):
        TrainConfig.from_dict({"accum_grad": 0})


def test_unreadable_audio_is_skipped_with_a_count_or_stops_with_its_name(toy_dir, tmp_path):
    from espnet_distill.data.kaldi_dir import write_utt2dur

    write_utt2dur(toy_dir)  # the data stage measured it; the file broke afterwards
    (tmp_path / "wav" / "spk1-003.wav").write_bytes(b"RIFF0000WAVEjunk")
    trainer, log = run(ToyTask(), toy_dir, tmp_path / "run", max_steps=6)
    assert trainer.counts["bad_utts"] >= 1
    assert len(log) == 6
    with pytest.raises(RuntimeError, match="more than max_bad_utts=0 unreadable utterances"):
        run(ToyTask(), toy_dir, tmp_path / "run2", max_steps=6, max_bad_utts=0)
    with pytest.raises(AudioError, match="utterance 'spk1-003'"):
        run(ToyTask(), toy_dir, tmp_path / "run3", max_steps=6, skip_bad_audio=False)


def test_stale_durations_are_cropped_not_trusted(toy_dir, tmp_path):
    from espnet_distill.data.kaldi_dir import write_utt2dur
    from espnet_distill.data.tables import read_table

    durs = write_utt2dur(toy_dir)
    assert durs["spk0-000"] == pytest.approx(0.3)
    assert durs["spk1-005"] == pytest.approx(0.8)
    # the audio of spk0-000 is replaced by a 6 s file: utt2dur is now stale
    from helpers import write_wav

    write_wav(tmp_path / "wav" / "spk0-000.wav", 6.0)
    ds = AudioDataset(toy_dir)
    item = ds[ds.utts.index("spk0-000")]
    assert item["cropped"]
    assert len(item["wav"]) == 4800
    trainer, log = run(ToyTask(), toy_dir, tmp_path / "run", max_steps=6)
    assert trainer.counts["cropped_utts"] >= 1
    assert max(r["batch_seconds"] for r in log) <= 1.0 + 1e-6
    assert float(read_table(toy_dir / "utt2dur").as_dict()["spk0-000"]) == pytest.approx(0.3)


def fbank_distill_task(schedule):
    """A DistillTask of a 2 x 16 fbank student with 3 front-end adaptation steps (seed 0)."""
    from espnet_distill.nn.hubert import HubertConfig, HubertModel
    from espnet_distill.teacher.teacher import HubertTeacher
    from espnet_distill.train.distill import DistillTask, build_student

    torch.manual_seed(0)
    conv = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]
    teacher = HubertTeacher(HubertModel(HubertConfig(conv_layers=conv, embed_dim=32, ffn_dim=32, num_layers=2,
                                                     num_heads=2, conv_pos=8, conv_pos_groups=4, final_dim=8,
                                                     num_classes=6)))
    student, _ = build_student({"student": {"frontend": "fbank", "dim": 16, "ffn_dim": 16, "num_layers": 2,
                                            "num_heads": 2, "conv_pos": 8, "conv_pos_groups": 4,
                                            "pred_head": "layer-wise", "disc_head": "type2"}}, teacher)
    return DistillTask(student, teacher, alpha=0.4, fe_adapt_steps=3, fe_adapt_schedule=schedule)


@pytest.mark.parametrize("schedule", ["fresh", "shared"])
def test_fbank_student_schedule_across_front_end_adaptation(toy_dir, tmp_path, schedule):
    """The real DistillTask through the Trainer. fresh: the transformer of an fbank student, randomly
    initialised, starts its own warm-up after front-end adaptation instead of the full rate. shared
    (the authors' code): one AdamW and one warm-up + decay over the run, the front-end keeping its
    moments. Either way the transformer does not move during adaptation."""
    from espnet_distill.train.trainer import warmup_linear

    task = fbank_distill_task(schedule)
    student = task.model
    encoder_before = {k: v.clone() for k, v in student.encoder.state_dict().items()}
    seen = {}
    orig = task.training_step

    def spy(batch, step):
        if step == 3:
            seen.update({k: v.clone() for k, v in student.encoder.state_dict().items()})
        return orig(batch, step)

    task.training_step = spy
    trainer, log = run(task, toy_dir, tmp_path / "run", max_steps=9, warmup_ratio=0.5, lr=0.001)
    lrs = [r["lr"] for r in log]
    if schedule == "fresh":
        assert lrs[:3] == pytest.approx([0.0005, 0.001, 0.001])  # adaptation: 2 warm-up steps of 3
        assert lrs[3:6] == pytest.approx([0.001 / 3, 0.002 / 3, 0.001])  # distillation: 3 warm-up steps of 6
    else:  # round(0.5 * 9) = 4 warm-up steps of 9, across the switch; Adam's step counts go on
        assert lrs == pytest.approx([0.001 * warmup_linear(s, 9, 4) for s in range(9)])
        state = trainer.optimizer.state
        assert state[student.fe_head.weight]["step"] == 3  # trained in adaptation only
        assert state[student.frontend.proj.weight]["step"] == 9  # the front-end: one run of moments
        assert state[student.encoder.layers[0].fc1.weight]["step"] == 6
    assert "fe_l1" in log[2]
    assert "reg" in log[3]
    for k, v in encoder_before.items():  # the transformer did not move during adaptation
        assert torch.equal(seen[k], v), k


def test_shared_schedule_resumes_exactly(toy_dir, tmp_path):
    """A shared-schedule run stopped after the phase switch (checkpoint at step 4) and resumed ends
    with the weights of the run that was not stopped: the one AdamW's moments and the schedule's
    position come back."""
    train = {"max_steps": 7, "warmup_ratio": 0.5, "lr": 0.001, "ckpt_every": 4}
    whole = fbank_distill_task("shared")
    run(whole, toy_dir, tmp_path / "whole", **train)

    def crash(step):
        if step == 6:
            raise RuntimeError("crashed")

    first = make_trainer(fbank_distill_task("shared"), toy_dir, tmp_path / "stopped", **train)
    first.update_hooks.append(crash)
    with pytest.raises(RuntimeError, match="crashed"):
        first.fit(resume=False)
    first._lock_file.close()  # the crashed process's lock, released as its exit would
    resumed = fbank_distill_task("shared")
    again = make_trainer(resumed, toy_dir, tmp_path / "stopped", **train)
    again.fit(resume=True)
    assert again.step == 7
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_one_trainer_per_output_dir_and_stale_temporaries_removed(toy_dir, tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    run(ToyTask(), toy_dir, out, max_steps=2)
    assert not list(out.glob(".checkpoint.pt.*.tmp"))
    assert (out / "checkpoint.pt").is_file()
    with open(out / ".lock", "a+") as other:  # another trainer holds the folder
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.truncate(0)
        other.write("4242")
        other.flush()
        with pytest.raises(RuntimeError, match=r"is in use by another trainer \(pid 4242\)"):
            run(ToyTask(), toy_dir, out, max_steps=2)


# ----------------------------------------------------------------------------- resume and DDP (a pretraining run)


@pytest.mark.slow
def test_killed_run_resumes_exactly(pretrain_corpus, tmp_path):
    ref = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "ref"), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    # The trainer SIGKILLs itself after the update of step 5, before that step's checkpoint.
    killed = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "killed"), capture_output=True, text=True,
                            env=dict(os.environ, ESPNET_DISTILL_KILL_AT_STEP="5"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ckpt = tmp_path / "killed/checkpoint.pt"
    step_at_kill = safe_load(ckpt)["step"]
    assert step_at_kill == 4
    assert not (tmp_path / "killed/teacher.pt").exists()
    r = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "killed"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {ckpt} at step {step_at_kill}" in r.stderr
    a = safe_load(tmp_path / "ref/teacher.pt")["state_dict"]
    b = safe_load(tmp_path / "killed/teacher.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_config(pretrain_corpus, tmp_path):
    first = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "run"), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    other = dict(TINY_PRETRAIN_CONF, train=dict(TINY_PRETRAIN_CONF["train"], lr=0.01))
    (pretrain_corpus / "other.yaml").write_text(yaml.safe_dump(other))
    cmd = pretrain_cmd(pretrain_corpus, tmp_path / "run")
    cmd[cmd.index("--config") + 1] = str(pretrain_corpus / "other.yaml")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0
    assert "was written by a run with another configuration" in r.stderr
    assert safe_load(tmp_path / "run/checkpoint.pt")["step"] == 8  # nothing was overwritten


@pytest.mark.slow
def test_two_process_ddp_on_cpu(pretrain_corpus, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "ddp", launcher), capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0/2: weights identical on all ranks" in r.stderr
    assert "rank 1/2: weights identical on all ranks" in r.stderr
    assert (tmp_path / "ddp/teacher.pt").is_file()


@pytest.mark.slow
def test_two_process_run_killed_resumes_exactly(pretrain_corpus, tmp_path):
    """Every rank's RNG state is in the checkpoint: a 2-process run killed after step 5 and
    resumed ends bit-identical to an uninterrupted 2-process run."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ref = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "ref", launcher), capture_output=True, text=True,
                         env=env)
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "killed", launcher), capture_output=True,
                            text=True,
                            env=dict(env, ESPNET_DISTILL_KILL_AT_STEP="5"))
    assert killed.returncode != 0
    state = safe_load(tmp_path / "killed/checkpoint.pt")
    assert state["step"] == 4
    assert len(state["rng_per_rank"]) == 2
    assert not torch.equal(state["rng_per_rank"][0]["torch"], state["rng_per_rank"][1]["torch"])
    r = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "killed", launcher), capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    a = safe_load(tmp_path / "ref/teacher.pt")["state_dict"]
    b = safe_load(tmp_path / "killed/teacher.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_compiled_student_trains_the_same_losses(toy_dir, tmp_path, monkeypatch):
    """train.compile: the student's forward through torch.compile (here the quick aot_eager backend,
    which runs the same captured graphs, forward and backward, as inductor compiles) gives the
    losses of the eager run, and its checkpoint keeps the eager names."""
    from helpers import tiny_student_conf, tiny_teacher

    from espnet_distill.train import trainer as trainer_module
    from espnet_distill.train.distill import DistillTask, build_student

    monkeypatch.setattr(trainer_module, "COMPILE_BACKEND", "aot_eager")
    losses = {}
    for compiled in (False, True):
        conf = tiny_student_conf()
        conf["student"].update(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
        teacher = tiny_teacher()
        torch.manual_seed(0)
        student, _ = build_student(conf, teacher)
        _, log = run(DistillTask(student, teacher, alpha=0.5), toy_dir, tmp_path / f"c{compiled}", max_steps=3,
                     lr=1e-3, compile=compiled)
        losses[compiled] = [r["loss"] for r in log]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    state = safe_load(tmp_path / "cTrue/checkpoint.pt")["model"]
    assert not any("_orig_mod" in k for k in state)


def s3prl_grouped(named: list[tuple[str, nn.Parameter]]) -> list[dict]:
    """s3prl's get_grouped_parameters (s3prl/optimizers.py), written out for one model: weight decay
    0.01 unless the name holds bias, LayerNorm.bias or LayerNorm.weight."""
    no_decay = ["bias", "LayerNorm.bias", "LayerNorm.weight"]
    return [{"params": [p for n, p in named if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0}]


def test_no_decay_groups_are_s3prls_and_leave_biases_undecayed(toy_dir, tmp_path):
    model = nn.ModuleDict({"proj": nn.Linear(3, 2), "layer_norm": nn.LayerNorm(2)})
    names = {id(p): n for n, p in model.named_parameters()}
    ours = no_decay_groups([{"params": list(model.parameters()), "weight_decay": 0.01}], names, ["bias"])
    theirs = s3prl_grouped(list(model.named_parameters()))
    assert [([names[id(p)] for p in g["params"]], g["weight_decay"]) for g in ours] == \
        [([names[id(p)] for p in g["params"]], g["weight_decay"]) for g in theirs]
    assert [names[id(p)] for p in ours[0]["params"]] == ["proj.weight", "layer_norm.weight"]  # fairseq's names
    # in a run: train.no_decay takes the biases out of the decay, the weights keep train.weight_decay
    for no_decay, bias_decays in (([], True), (["bias"], False)):
        task = ToyTask()
        trainer, _ = run(task, toy_dir, tmp_path / f"run{len(no_decay)}", weight_decay=0.5, no_decay=no_decay,
                         max_steps=1)
        name_of = {id(p): n for n, p in task.model.named_parameters()}
        decays = {name_of[id(p)]: g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
        assert decays["first.weight"] == 0.5
        assert (decays["first.bias"] == 0.5) == bias_decays
