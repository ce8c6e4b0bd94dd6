"""egs2/synth_en/distill1 stage 1 at a tiny size: builds validated dirs; a rerun skips it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import need

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs2/synth_en/distill1"


def copy_recipe(dst: Path) -> Path:
    """A private copy of the recipe dir (its own data/ and exp/), linked to this checkout."""
    dst.mkdir(parents=True)
    for name in ("run.sh", "path.sh", "cmd.sh", "db.sh"):
        shutil.copy(RECIPE / name, dst / name)
    for name in ("conf", "local"):
        if (RECIPE / name).exists():
            shutil.copytree(RECIPE / name, dst / name)
    (dst / "utils").symlink_to(ROOT / "utils")
    (dst / "distill.sh").symlink_to(ROOT / "egs2/TEMPLATE/distill1/distill.sh")
    return dst


def recipe_env() -> dict:
    return dict(os.environ, MAIN_ROOT=str(ROOT), ESPNET_DISTILL_VENV=str(Path(sys.executable).parents[1]))


TINY = ["--local_data_opts", "--train_hours 0.02 --dev_utts 6 --test_utts 6 --lowres 1min:60 --nj 2",
        "--finetune_sets", "train_1min"]


def test_stage1_runs_then_skips(tmp_path):
    need("espeak-ng")
    r = copy_recipe(tmp_path / "recipe")
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
    r = copy_recipe(tmp_path / "recipe")
    p = subprocess.run(["./run.sh", "--stgae", "1"], cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode != 0 and "invalid option --stgae" in p.stderr and "--stop-stage" in p.stderr
