"""One update whatever the number of processes: a tiny student distilled (dropout off) under torchrun
with gloo in 1, 2, 3 and 5 processes ends with the same weights; so does an fbank student across its
phase switch; 5 processes finish with a 2-utterance valid set; two processes killed mid-run and
resumed end bit-identical to an uninterrupted run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import make_data_dir, tiny_student_conf, tiny_teacher

from espnet_distill.checkpoint_io import safe_load
from espnet_distill.teacher.checkpoints import save_hubert

pytestmark = pytest.mark.slow

NO_DROPOUT = {"dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """14 training utterances of 0.3-1.6 s, a 2-utterance valid set and a tiny local teacher."""
    root = tmp_path_factory.mktemp("world")
    train = make_data_dir(root, {f"spk{i % 3}-{i:03d}": (f"spk{i % 3}", "a") for i in range(14)}, "train")
    valid = make_data_dir(root / "v", {f"v{i}": ("v", "a") for i in range(2)}, "valid")
    save_hubert(root / "teacher.pt", tiny_teacher().model)
    (root / "teacher.yaml").write_text(yaml.safe_dump({"backend": "local", "path": str(root / "teacher.pt")}))
    return root, train, valid


def config(root, frontend="cnn", **train):
    conf = tiny_student_conf(frontend=frontend)
    conf["student"].update(NO_DROPOUT)
    if frontend == "fbank":
        conf["student"]["frontend_conf"] = {"dropout": 0.0}
    conf["distill"] = {"alpha": 0.5, "fe_adapt_steps": 2 if frontend == "fbank" else 0, "cmvn_utts": 14}
    conf["train"] = {"max_steps": 2, "lr": 0.001, "warmup_ratio": 0.0, "global_batch_size": 12,
                     "global_batch_seconds": 100, "ckpt_every": 1, "log_every": 1, "valid_every": 1, **train}
    path = root / f"{frontend}_{abs(hash(json.dumps(train, sort_keys=True)))}.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def distill(setup, conf, outdir, world, env=None, *extra):
    root, train, valid = setup
    launcher = [sys.executable] if world == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
    cmd = launcher + ["-m", "espnet_distill.bin.distill_train", "--config", str(conf), "--teacher",
                      str(root / "teacher.yaml"), "--train-dir", str(train), "--valid-dir", str(valid),
                      "--outdir", str(outdir), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))


def weights(outdir):
    return safe_load(outdir / "checkpoint.pt")["model"]


def initial_weights(setup, conf, outdir):
    """The student before distillation (``--init-only``): what the updates start from."""
    r = distill(setup, conf, outdir, 1, None, "--init-only")
    assert r.returncode == 0, r.stderr[-3000:]
    return safe_load(outdir / "student.pt")["state_dict"]


def assert_same_update(ref, other, start):
    """``other``'s weights equal ``ref``'s to float rounding: the two runs' difference is within a
    thousandth of how far the updates moved the student (norms over all weights; the gradients
    themselves agree to about 1e-5, summed in another order, and AdamW's normalisation amplifies
    rounding where a gradient is near 0). The attention key biases are left out: softmax is
    invariant to them, so their gradient is 0 up to rounding, which AdamW turns into full steps.
    The old per-process batches and means ended 2.2 times the updates apart."""
    keys = [k for k in ref if not k.endswith("k_proj.bias")]

    def norm(a, b):
        return sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in keys) ** 0.5

    moved, diff = norm(ref, start), norm(ref, other)
    print(f"difference {diff:.3g}, {diff / moved:.2g} of the move {moved:.3g}")
    assert moved > 1e-3  # the updates did move the student
    assert diff <= 1e-3 * moved


def test_one_update_in_1_2_3_and_5_processes(setup, tmp_path):
    conf = config(setup[0])
    start = initial_weights(setup, conf, tmp_path / "start")
    runs = {}
    for world in (1, 2, 3, 5):
        r = distill(setup, conf, tmp_path / f"w{world}", world)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[world] = weights(tmp_path / f"w{world}")
        log = [json.loads(line) for line in (tmp_path / f"w{world}/train_log.jsonl").read_text().splitlines()]
        train = [x for x in log if x["split"] == "train"]
        # each update holds 12 utterances, whatever the number of processes (14 = 12 + 2: the second
        # update takes the rest, with 2 of the 5 processes given an empty share)
        assert sorted(x["batch_utts"] for x in train) == [2, 12]
        assert all(x["world"] == world for x in train)
        assert all(x["padded_seconds"] >= x["batch_seconds"] for x in train)
        valid = [x for x in log if x["split"] == "valid"]
        assert valid
        assert all(x["loss"] > 0 for x in valid)  # 2 valid utterances over 5 processes: no hang
    for world in (2, 3, 5):
        assert_same_update(runs[1], runs[world], start)


def test_gradient_accumulation_trains_the_same_update(setup, tmp_path):
    r1 = distill(setup, config(setup[0]), tmp_path / "one", 1)
    r4 = distill(setup, config(setup[0], accum_grad=4), tmp_path / "accum", 1)
    assert r1.returncode == 0, r4.stderr[-3000:]
    assert r4.returncode == 0, r4.stderr[-3000:]
    start = initial_weights(setup, config(setup[0]), tmp_path / "start")
    assert_same_update(weights(tmp_path / "one"), weights(tmp_path / "accum"), start)


def test_fbank_student_across_its_phase_switch(setup, tmp_path):
    """Front-end adaptation (2 updates), then the whole student (2 updates): a new optimizer over
    other parameters, in 1 and in 3 processes."""
    conf = config(setup[0], "fbank", max_steps=4)
    start = initial_weights(setup, conf, tmp_path / "start")
    runs = {}
    for world in (1, 3):
        r = distill(setup, conf, tmp_path / f"w{world}", world)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[world] = weights(tmp_path / f"w{world}")
        phases = [json.loads(line)["phase"] for line in (tmp_path / f"w{world}/train_log.jsonl").open()
                  if '"train"' in line]
        assert phases == [0, 0, 1, 1]
    assert_same_update(runs[1], runs[3], start)


def test_two_processes_killed_and_resumed_end_bit_identical(setup, tmp_path):
    conf = config(setup[0], max_steps=4)
    ref = distill(setup, conf, tmp_path / "ref", 2)
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = distill(setup, conf, tmp_path / "killed", 2, {"ESPNET_DISTILL_KILL_AT_STEP": "3"})
    assert killed.returncode != 0
    assert safe_load(tmp_path / "killed/checkpoint.pt")["step"] == 2
    again = distill(setup, conf, tmp_path / "killed", 2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr
    a, b = weights(tmp_path / "ref"), weights(tmp_path / "killed")
    for k in a:
        assert torch.equal(a[k], b[k]), k
