"""egs2/synth_en/distill1 stage 1 at a tiny size: builds validated dirs; a rerun skips it."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from helpers import copy_recipe, need, recipe_env

pytestmark = pytest.mark.slow  # a recipe run



def synth_recipe(dst: Path) -> Path:
    """A private copy of the embedded recipe (its own data/ and exp/), linked to this checkout."""
    return copy_recipe("synth_en", dst, ("run.sh", "db.sh", "conf", "local"))


TINY = ["--local_data_opts", "--train_hours 0.02 --dev_utts 6 --test_utts 6 --lowres 1min:60 --nj 2",
        "--finetune_sets", "train_1min"]


def test_stage1_runs_then_skips(tmp_path):
    need("espeak-ng")
    r = synth_recipe(tmp_path / "recipe")
    # distill.sh itself (the demo's run.sh pins its thread count): the TEMPLATE's defaults
    p = subprocess.run(["./distill.sh", "--stage", "1", "--stop_stage", "1", *TINY], cwd=r,
                       env={k: v for k, v in recipe_env().items() if k != "train_threads"},
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    for x in ("train", "dev", "test", "train_1min"):
        assert (r / "data" / x / "wav.scp").is_file()
    assert "vocabulary:" in p.stdout
    assert (r / "exp/data/.done").is_file()
    # the training threads: the free cores by default, said in the log and kept for reproduce.sh
    threads = int(re.search(r"Training jobs take (\d+) CPU threads \(the free cores: \d+ cores, load ", p.stderr)[1])
    assert 1 <= threads <= os.cpu_count()
    assert f"train_threads={threads} " in (r / "exp/data/reproduce.sh").read_text()
    text = (r / "data/train/text").read_bytes()

    t0 = time.time()
    p2 = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1", *TINY], cwd=r, env=recipe_env(),
                        capture_output=True, text=True)
    assert p2.returncode == 0
    assert "already done" in p2.stderr
    assert time.time() - t0 < 10
    assert (r / "data/train/text").read_bytes() == text


def test_unknown_option_fails_with_list(tmp_path):
    r = synth_recipe(tmp_path / "recipe")
    p = subprocess.run(["./run.sh", "--stgae", "1"], cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode != 0
    assert "invalid option --stgae" in p.stderr
    assert "--stop-stage" in p.stderr


def test_a_stage_range_that_runs_nothing_is_an_error(tmp_path):
    r = synth_recipe(tmp_path / "recipe")
    for args, message in ((["--stage", "7"], "--stage must be a stage number 1-6, got '7'"),
                          (["--stage", "abc"], "--stage must be a stage number 1-6, got 'abc'"),
                          (["--stage", "3", "--stop_stage", "1"], "--stage 3 is after --stop_stage 1"),
                          (["--gpu_inference", "yes"], "--gpu_inference must be true or false, got 'yes'")):
        p = subprocess.run(["./run.sh", *args], cwd=r, env=recipe_env(), capture_output=True, text=True)
        assert p.returncode != 0, args
        assert message in p.stderr, args
        assert "Successfully finished" not in p.stderr, args


def test_older_option_names_set_the_options_they_name(tmp_path):
    r = synth_recipe(tmp_path / "recipe")
    p = subprocess.run(["./run.sh", "--bpe_size", "37", "--decode_att_config", "conf/x.yaml", "--stage", "7"], cwd=r,
                       env=recipe_env(), capture_output=True, text=True)
    assert "--bpe_size 37 (an older name): --nbpe 37" in p.stderr
    assert "--decode_att_config conf/x.yaml (an older name): --inference_config conf/x.yaml" in p.stderr


def test_template_help_runs_in_its_own_folder():
    """``./distill.sh --help`` in egs2/TEMPLATE/distill1 (its utils/ is there, as in every recipe)."""
    from helpers import ROOT

    p = subprocess.run(["./distill.sh", "--help"], cwd=ROOT / "egs2/TEMPLATE/distill1", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-500:]
    assert "--nbpe" in p.stdout + p.stderr, p.stderr[-500:]


@pytest.mark.parametrize("args, message", [
    (["--distill_configs", "conf/distill/dt_cnnn.yaml"], "--distill_configs conf/distill/dt_cnnn.yaml: no such file"),
    (["--fbank_configs", "conf/distill/fbank.yaml"], "--fbank_configs conf/distill/fbank.yaml: no such file"),
    (["--teacher_config", "conf/teacher/x.yaml"], "--teacher_config conf/teacher/x.yaml: no such file"),
    (["--asr_config", "conf/asr/ctcc.yaml"], "--asr_config (for train_10min) conf/asr/ctcc.yaml: no such file"),
    (["--token_type", "chars"], "--token_type must be char or bpe, got 'chars'"),
    (["--lm_config", "conf/lm/rnnn.yaml"], "--lm_config conf/lm/rnnn.yaml: no such file"),  # the demo: --use_lm true
    (["--lm_train_text", "lm.txt"], "--lm_train_text lm.txt: no such file"),
    (["--use_lm", "false", "--ngram_file", "t.arpa"], "--ngram_file is fused with the LM's beam search"),
    (["--distill_args", "--set train.max_stepz=3"], "unknown train keys ['max_stepz']"),
    (["--asr_args", "--max_epochh 3"], "with --asr_args '--max_epochh 3' is refused by ESPnet's parser"),
])
def test_a_mistyped_option_fails_before_a_finished_stage_is_moved(tmp_path, args, message):
    """Every option a stage in range reads is checked before any stage moves its results aside."""
    r = synth_recipe(tmp_path / "recipe")
    for name in ("teacher", "distill", "fbank", "asr"):  # finished stages, as a user's earlier run left them
        (r / "exp" / name).mkdir(parents=True)
        (r / "exp" / name / ".done").write_text("earlier options\n")
    p = subprocess.run(["./run.sh", "--stage", "2", "--stop_stage", "6", *args], cwd=r, env=recipe_env(),
                       capture_output=True, text=True)
    assert p.returncode != 0, p.stderr[-1500:]
    assert message in p.stderr, p.stderr[-1500:]
    assert sorted(d.name for d in (r / "exp").iterdir()) == ["asr", "distill", "fbank", "teacher"]  # nothing moved
    assert "moving its results" not in p.stderr


def test_ngpu_without_cuda_is_an_error(tmp_path):
    r = synth_recipe(tmp_path / "recipe")
    p = subprocess.run(["./run.sh", "--stage", "3", "--stop_stage", "3", "--ngpu", "1"], cwd=r,
                       env=recipe_env(CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True)
    assert p.returncode != 0
    assert "--ngpu 1 but torch sees no usable CUDA device" in p.stderr


def test_unlabelled_training_set_passes_stage_1(tmp_path):
    """Distillation needs audio only: a training set without transcripts is a valid stage-1 output
    when it is not also a fine-tuning set."""
    from helpers import make_data_dir

    r = synth_recipe(tmp_path / "recipe")
    src = tmp_path / "src"
    for name in ("train", "dev", "test"):
        make_data_dir(src, {f"s{i}-{name}{i}": (f"s{i}", "a b") for i in range(3)}, name)
    (src / "train/text").unlink()
    (r / "local/data.sh").write_text("#!/usr/bin/env bash\nset -euo pipefail\nmkdir -p data\n"
                                     f"cp -r {src}/train {src}/dev {src}/test data/\n")
    p = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1", "--local_data_opts", "",
                        "--finetune_sets", "dev"],
                       cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (r / "data/train/utt2dur").is_file()
    assert not (r / "data/train/text").exists()


def test_a_failing_stage_1_rerun_loses_nothing(tmp_path):
    """A rerun of stage 1 whose local/data.sh fails midway (a bad --lowres) puts the data dirs of
    the previous run back: the old training set and its subset are still there, unchanged."""
    need("espeak-ng")
    r = synth_recipe(tmp_path / "recipe")
    p = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1", *TINY], cwd=r, env=recipe_env(),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    before = {f: (r / "data" / f).read_bytes() for f in ("train/text", "train/wav.scp", "train_1min/utt2spk")}
    bad = ["--local_data_opts", "--train_hours 0.03 --dev_utts 6 --test_utts 6 --lowres 1min:abc --nj 2",
           "--finetune_sets", "train_1min"]
    p = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1", *bad], cwd=r, env=recipe_env(),
                       capture_output=True, text=True)
    assert p.returncode != 0
    assert "the data dirs of the previous run are restored" in p.stderr
    assert {f: (r / "data" / f).read_bytes() for f in before} == before
    assert not list((r / "exp").glob("data*/.previous.*"))
