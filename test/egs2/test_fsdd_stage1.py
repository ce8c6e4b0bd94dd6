"""egs2/fsdd/distill1 stage 1: with FSDD absent it clones FSDD_URL (here a local git repository
holding a few real FSDD recordings) and prepares the speaker split; without a reachable URL it
stops with a message saying where to put the recordings."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from helpers import FSDD_RECORDINGS, copy_recipe, need, recipe_env

pytestmark = pytest.mark.slow  # a recipe run

ROOT = Path(__file__).resolve().parents[2]
SPEAKERS = ("jackson", "theo", "nicolas", "yweweler", "lucas", "george")
TINY_SYNTH = "--train_hours 0.005 --dev_utts 2 --test_utts 2 --lowres '' --nj 1"


def fsdd_recipe(tmp: Path) -> Path:
    """tmp/egs2/fsdd/distill1 (local/ and db.sh copied), with synth_en as its sibling."""
    (tmp / "egs2").mkdir()
    (tmp / "egs2/synth_en").symlink_to(ROOT / "egs2/synth_en")
    return copy_recipe("fsdd", tmp / "egs2/fsdd/distill1")


def git_repo(path: Path) -> Path:
    """A git repository with FSDD's layout and two real recordings per speaker."""
    need("git")
    (path / "recordings").mkdir(parents=True)
    for spk in SPEAKERS:
        for digit in (4, 8):
            shutil.copy(FSDD_RECORDINGS / f"{digit}_{spk}_0.wav", path / "recordings")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    for cmd in (["init", "-q"], ["add", "recordings"], ["commit", "-q", "-m", "fsdd"]):
        subprocess.run(["git", *cmd], cwd=path, env=env, check=True)
    return path


def run_data(r: Path, url: str) -> subprocess.CompletedProcess:
    env = recipe_env(FSDD=str(r / "no_such_folder"), FSDD_URL=url)
    return subprocess.run(["local/data.sh", "--synth_opts", TINY_SYNTH], cwd=r, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("reachable", [True, False])
def test_clones_fsdd_when_absent(tmp_path, reachable):
    need("espeak-ng")
    r = fsdd_recipe(tmp_path)
    url = str(git_repo(tmp_path / "fsdd_repo")) if reachable else str(tmp_path / "unreachable")
    p = run_data(r, url)
    if not reachable:
        assert p.returncode == 1
        assert f"cannot clone {url}" in p.stderr
        assert "Put FSDD's recordings/ folder" in p.stderr
        assert not (r / "downloads/free-spoken-digit-dataset").exists()
        assert not (r / "data/train").exists()  # it fails before the synthetic corpus is made
        return
    assert p.returncode == 0, p.stderr[-3000:]
    clone = (r / "downloads/free-spoken-digit-dataset/recordings").resolve()
    test_wav = dict(line.split(maxsplit=1) for line in (r / "data/fsdd_test/wav.scp").read_text().splitlines())
    assert set(test_wav) == {"george-4_00", "george-8_00"}
    assert all(Path(p).parent == clone for p in test_wav.values())
    assert (r / "data/fsdd_train/text").read_text().count("\n") == 8
    # the teacher's data: FSDD's 8 kHz training audio and the synthetic part at the same rate (band-limited)
    pretrain = dict(line.split(maxsplit=1) for line in (r / "data/train_pretrain/wav.scp").read_text().splitlines())
    synthetic = [p for p in pretrain.values() if Path(p).parent != clone]
    assert len(pretrain) - len(synthetic) == 8
    assert synthetic
    assert {sf.info(p).samplerate for p in pretrain.values()} == {8000}
    assert all(Path(p).is_relative_to((r / "data/train_8000hz").resolve()) for p in synthetic)
