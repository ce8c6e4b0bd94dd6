"""A pruned run end to end (distill_train with a prune section): the gates follow the target, the
pruned student lands near it and is distilled again; a rerun resumes from what was written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import make_data_dir, tiny_teacher

from espnet_distill.bin import distill_train
from espnet_distill.checkpoint_io import safe_load
from espnet_distill.student.export import load_student
from espnet_distill.teacher.checkpoints import save_hubert

TARGET = 20000
pytestmark = pytest.mark.slow  # 60 + 3 updates per run


@pytest.fixture
def pruned_run(tmp_path):
    train = make_data_dir(tmp_path, {f"spk{i % 2}-{i:02d}": (f"spk{i % 2}", "a") for i in range(4)}, "train")
    valid = make_data_dir(tmp_path, {"v0": ("v", "a")}, "valid")
    teacher = tiny_teacher().model
    save_hubert(tmp_path / "teacher.pt", teacher)
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump({"backend": "local", "path": str(tmp_path / "teacher.pt")}))
    conf = {"student": {"layer_map": {2: 2, 4: 4}, "disc_head": None},
            "prune": {"target_params": TARGET, "steps": 60, "target_warmup": 0.4, "gate_lr": 0.2},
            "train": {"max_steps": 3, "global_batch_size": 4, "ckpt_every": 20, "log_every": 1, "lr": 1e-3}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(conf))
    full = sum(p.numel() for n, p in teacher.named_parameters()
               if not n.startswith(("final_proj", "label_embs", "mask_emb")))

    def args(outdir):
        return ["--config", str(tmp_path / "c.yaml"), "--teacher", str(tmp_path / "teacher.yaml"),
                "--train-dir", str(train), "--valid-dir", str(valid), "--outdir", str(outdir)]

    def go() -> int:
        return distill_train.main(args(tmp_path / "out"))

    go.args = args
    return go, tmp_path / "out", full


def test_gates_follow_the_target_and_the_result_is_an_ordinary_student(pruned_run):
    go, out, full = pruned_run
    assert full > 2 * TARGET
    assert go() == 0
    log = [json.loads(line) for line in (out / "prune/train_log.jsonl").read_text().splitlines()]
    train = [r for r in log if r["split"] == "train"]
    assert train[0]["target_mparams"] * 1e6 > 0.9 * full  # the target starts at the full size ...
    assert abs(train[-1]["target_mparams"] * 1e6 - TARGET) < 1  # ... and reaches target_params
    start, end = train[0]["expected_mparams"] * 1e6, train[-1]["expected_mparams"] * 1e6
    assert end < start - 0.3 * (start - TARGET)  # the gates close: 30 % of the way or more in 60 updates
    pruned, meta = load_student(out / "prune/student.pt")
    assert pruned.cfg.layer_heads is not None
    one_head = 4 * 32 * 16 + 3 * 16
    assert TARGET - one_head < meta["params"]["total_without_heads"] <= TARGET
    final, _ = load_student(out / "student.pt")
    assert final.cfg == pruned.cfg  # distilled again, same structure
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3
    assert summary["params"]["total_without_heads"] == meta["params"]["total_without_heads"]
    assert "off_target" in summary["prune"]


def test_a_rerun_reads_the_finished_pruning(pruned_run):
    go, out, _ = pruned_run
    assert go() == 0
    before = (out / "prune/student.pt").read_bytes()
    log_lines = len((out / "prune/train_log.jsonl").read_text().splitlines())
    assert go() == 0
    assert (out / "prune/student.pt").read_bytes() == before
    assert len((out / "prune/train_log.jsonl").read_text().splitlines()) == log_lines


def test_a_run_killed_while_pruning_resumes_to_the_same_students(pruned_run, tmp_path):
    go, _, _ = pruned_run
    ref = subprocess.run([sys.executable, "-m", "espnet_distill.bin.distill_train", *go.args(tmp_path / "ref")],
                         capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "ref"
    cmd = [sys.executable, "-m", "espnet_distill.bin.distill_train", *go.args(tmp_path / "killed")]
    killed = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, ESPNET_DISTILL_KILL_AT_STEP="25"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert safe_load(tmp_path / "killed/prune/checkpoint.pt")["step"] == 20
    assert not (tmp_path / "killed/prune/student.pt").exists()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    for name in ("prune/student.pt", "student.pt"):
        a, b = safe_load(out / name)["state_dict"], safe_load(tmp_path / "killed" / name)["state_dict"]
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
