"""egs2/synth_en/distill1 stage 1 at a tiny size: builds validated dirs; a rerun skips it."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from conftest import copy_recipe, need, recipe_env



def synth_recipe(dst: Path) -> Path:
    """A private copy of the embedded recipe (its own data/ and exp/), linked to this checkout."""
    return copy_recipe("synth_en", dst, ("run.sh", "db.sh", "conf", "local"))


TINY = ["--local_data_opts", "--train_hours 0.02 --dev_utts 6 --test_utts 6 --lowres 1min:60 --nj 2",
        "--finetune_sets", "train_1min"]


def test_stage1_runs_then_skips(tmp_path):
    need("espeak-ng")
    r = synth_recipe(tmp_path / "recipe")
    p = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1", *TINY], cwd=r, env=recipe_env(),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    for x in ("train", "dev", "test", "train_1min"):
        assert (r / "data" / x / "wav.scp").is_file()
    assert "vocabulary:" in p.stdout
    assert (r / "exp/data/reproduce.sh").is_file() and (r / "exp/data/.done").is_file()
    text = (r / "data/train/text").read_bytes()

    t0 = time.time()
    p2 = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1", *TINY], cwd=r, env=recipe_env(),
                        capture_output=True, text=True)
    assert p2.returncode == 0 and "already done" in p2.stderr
    assert time.time() - t0 < 10
    assert (r / "data/train/text").read_bytes() == text


def test_unknown_option_fails_with_list(tmp_path):
    r = synth_recipe(tmp_path / "recipe")
    p = subprocess.run(["./run.sh", "--stgae", "1"], cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode != 0 and "invalid option --stgae" in p.stderr and "--stop-stage" in p.stderr
