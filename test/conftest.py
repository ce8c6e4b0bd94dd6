"""Fixtures and the test environment; the helpers they use are in helpers.py. Tests run offline on
data they build, the embedded corpus and the FSDD recordings under test/data (nothing outside the
repository)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SYNTH_TINY_DATA, TINY_PRETRAIN_CONF, copy_recipe, make_data_dir, need, recipe_env

# Scripts under utils/ and the recipes call `python`: make it this interpreter.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{ROOT / 'utils'}{os.pathsep}{os.environ['PATH']}"
os.environ.setdefault("OMP_NUM_THREADS", "1")


# The longest tests start first (make test runs two xdist workers with --dist load
# --maxschedchunk 1, which hands each worker two tests at the start and then one at a time):
# worker 1 builds the shared stage-1 recipe and runs the CNN-student recipe, then the LibriSpeech
# downloads; worker 2 runs the FSDD recipe (no stage-1 recipe needed), then the Fbank recipe on
# the shared stage 1. The other tests follow, the slow ones first, so the workers end together.
START_FIRST = (
    "test/egs2/test_swap_teacher.py::test_local_teacher_and_cnn_student_through_stage_6",
    "test/egs2/test_librispeech_data.py::test_downloads_what_is_missing",
    "test/egs2/test_new_recipe.py::test_new_recipe_as_the_readme_says",
    "test/egs2/test_synth_en_stages.py::test_stages_1_to_6_tiny",
)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> tuple[int, int]:
        if item.nodeid in START_FIRST:
            return 0, START_FIRST.index(item.nodeid)
        return (1 if item.get_closest_marker("slow") else 2), 0

    items.sort(key=rank)  # stable: pytest's order within a rank


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return make_data_dir(
        tmp_path,
        {
            "spkA-001": ("spkA", "hello world"),
            "spkA-002": ("spkA", "good morning"),
            "spkB-001": ("spkB", "the cat sat"),
            "spkB-002": ("spkB", "on the mat"),
        },
    )


@pytest.fixture(scope="session")
def pretrain_corpus(tmp_path_factory):
    """A tiny synthetic corpus with MFCC k-means labels (8 clusters) and the pretraining config
    ``conf.yaml`` (TINY_PRETRAIN_CONF): what a teacher pretraining run needs."""
    from espnet_distill.corpora.synth_en import plan_corpus, synthesize_specs, write_data_dir
    from espnet_distill.teacher import kmeans

    need("espeak-ng")
    root = tmp_path_factory.mktemp("corpus")
    plan_corpus(root / "plan", seed=1, train_hours=0.012, dev_utts=4, test_utts=2)
    for s in ("train", "dev"):
        synthesize_specs(root / "plan" / s / "spec.scp", root / "wav", progress=False)
        write_data_dir(root / "plan" / s / "spec.scp", root / "wav", root / "data" / s)
    feats = {}
    for s in ("train", "dev"):
        feats[s] = root / f"{s}.pt"
        kmeans.dump_features(root / "data" / s, feats[s])
    subprocess.run([sys.executable, "-m", "espnet_distill.bin.teacher_pretrain", "kmeans", "--train-feats",
                    str(feats["train"]), "--label", f"train={feats['train']}", f"valid={feats['dev']}",
                    "--n-clusters", "8", "--outdir", str(root / "km")], check=True, capture_output=True)
    (root / "conf.yaml").write_text(yaml.safe_dump(TINY_PRETRAIN_CONF))
    return root


@pytest.fixture(scope="session")
def synth_stage1(tmp_path_factory) -> Path:
    """The embedded recipe (egs2/synth_en/distill1) through stage 1 at the tiny size of
    ``SYNTH_TINY_DATA``, built once per session, shared by the xdist workers (a file lock): the
    recipe tests copy it (:func:`copy_stage1`) instead of each synthesising the same corpus."""
    from filelock import FileLock

    need("espeak-ng")
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # one folder for all workers of this session
    r = base / "synth_stage1"
    with FileLock(str(base / "synth_stage1.lock")):
        if not (r / ".built").is_file():
            shutil.rmtree(r, ignore_errors=True)
            copy_recipe("synth_en", r, ("run.sh", "db.sh", "conf", "local"))
            p = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1", "--nj", "2",
                                "--local_data_opts", SYNTH_TINY_DATA, "--finetune_sets", "train_1min"],
                               cwd=r, env=recipe_env(), capture_output=True, text=True)
            assert p.returncode == 0, f"the shared stage-1 recipe failed:\n{p.stderr[-4000:]}"
            (r / ".built").touch()
    return r


@pytest.fixture
def copy_stage1(synth_stage1, tmp_path):
    """A private copy of :func:`synth_stage1` at ``tmp_path/recipe`` (its data/, downloads/ and the
    stage-1 marker copied; the links to this checkout kept): a rerun of stage 1 with the same
    ``--local_data_opts`` is already done there."""
    r = tmp_path / "recipe"
    shutil.copytree(synth_stage1, r, symlinks=True, ignore=shutil.ignore_patterns(".built"))
    return r
