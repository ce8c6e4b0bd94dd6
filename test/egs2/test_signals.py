"""A signal to a recipe stops every process of the running stage before anything is restored, and a
recipe killed with SIGKILL leaves no process behind (stage 1's data preparation, training jobs)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import make_data_dir, recipe_env
from test_synth_en_stage1 import synth_recipe
from test_synth_en_stages import TEACHER

pytestmark = pytest.mark.slow

SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]


def our_processes(token: str) -> list[int]:
    """The pids of the processes this test started: those whose environment holds ``token``."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if f"SIGNAL_TEST={token}".encode() in (p / "environ").read_bytes().split(b"\0"):
                state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(p.name))
        except OSError:
            continue
    return found


def wait_until(cond, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if cond():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def make_sets(root: Path) -> Path:
    src = root / "src"
    for name, n in (("train", 12), ("dev", 4)):
        make_data_dir(src, {f"s{i % 3}-{name}{i:02d}": (f"s{i % 3}", "a b") for i in range(n)}, name)
    return src


def data_sh(src: Path, slow: bool, mark: Path) -> str:
    """A local/data.sh that copies ``src``'s sets; ``slow``: it first removes data/train (a stage
    half done), then runs a 6 s job through ${train_cmd} before it writes anything."""
    lines = ["#!/usr/bin/env bash", "set -euo pipefail", f'echo $$ > {mark}/data.pid']
    if slow:
        lines += ["rm -rf data/train",
                  f"${{train_cmd}} {mark}/job.log echo '$BASHPID' '>' {mark}/job.pid ';' sleep 6",
                  f"touch {mark}/data_sh_went_on"]
    lines += ["mkdir -p data", f"cp -r {src}/train {src}/dev data/"]
    return "\n".join(lines) + "\n"


STAGE1 = ["./run.sh", "--stage", "1", "--stop_stage", "1", "--local_data_opts", "", "--test_sets", "dev",
          "--finetune_sets", "dev"]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_at_stage_1_stops_data_preparation_before_the_restore(tmp_path, sig):
    r = synth_recipe(tmp_path / "recipe")
    mark = tmp_path / "mark"
    mark.mkdir()
    src = make_sets(tmp_path)
    (r / "local/data.sh").write_text(data_sh(src, False, mark))
    p = subprocess.run(STAGE1, cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    before = {f: (r / "data" / f).read_bytes() for f in ("train/wav.scp", "dev/wav.scp")}
    (r / "local/data.sh").write_text(data_sh(src, True, mark))
    token = uuid.uuid4().hex
    proc = subprocess.Popen([*STAGE1, "--force", "true"], cwd=r, env=recipe_env(SIGNAL_TEST=token),
                            stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (mark / "job.pid").is_file() and (mark / "job.pid").read_text().strip(), 60, "the job")
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    wait_until(lambda: not our_processes(token), 10, "the recipe's processes to stop")
    assert not (mark / "data_sh_went_on").exists()
    if sig != signal.SIGKILL:
        assert code == 128 + sig, err[-3000:]
        assert f"Got SIG{sig.name[3:]}: stopping the running processes first" in err
        assert "Stage 1 failed: the data dirs of the previous run are restored" in err
        assert {f: (r / "data" / f).read_bytes() for f in before} == before
    else:  # nothing ran to restore: the next run restores from what the killed one kept aside
        assert code == -signal.SIGKILL
        assert not (r / "data/train").exists()
        (r / "local/data.sh").write_text("#!/usr/bin/env bash\nexit 3\n")
        p = subprocess.run(STAGE1, cwd=r, env=recipe_env(), capture_output=True, text=True)
        assert p.returncode != 0
        assert "Stage 1 was killed in an earlier run: the data dirs of the previous run are restored" in p.stderr
        assert {f: (r / "data" / f).read_bytes() for f in before} == before
    time.sleep(7)  # as long as the job would have run: nothing writes into data/ after the signal
    assert not (mark / "data_sh_went_on").exists()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_during_training_stops_the_trainer(tmp_path, sig):
    r = synth_recipe(tmp_path / "recipe")
    mark = tmp_path / "mark"
    mark.mkdir()
    (r / "local/data.sh").write_text(data_sh(make_sets(tmp_path), False, mark))
    teacher = {**TEACHER, "iterations": 1, "kmeans": {"n_clusters": 4, "sample_frames": 2000, "seed": 0},
               "train": {**TEACHER["train"], "max_steps": 100000, "valid_every": 100000, "ckpt_every": 100000}}
    teacher.pop("iter2_layer")
    (r / "conf/teacher/tiny.yaml").write_text(yaml.safe_dump(teacher))
    token = uuid.uuid4().hex
    proc = subprocess.Popen([*STAGE1[:4], "2", *STAGE1[5:], "--teacher_config", "conf/teacher/tiny.yaml", "--nj", "1"],
                            cwd=r, env=recipe_env(SIGNAL_TEST=token),
                            stderr=subprocess.PIPE, text=True)
    log = r / "exp/teacher/iter1/train.log"
    wait_until(lambda: log.is_file() and "step" in log.read_text(), 180, "training to log a step")
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    wait_until(lambda: not our_processes(token), 30, "the trainer to stop")
    if sig != signal.SIGKILL:
        assert code == 128 + sig, err[-3000:]
        assert f"Got SIG{sig.name[3:]}" in err
    assert not (r / "exp/teacher/.done").exists()
