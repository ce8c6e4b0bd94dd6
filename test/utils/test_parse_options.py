"""utils/parse_options.sh: --foo-bar x sets foo_bar; unknown options list the valid ones."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
stage=1
train_set=train
help_message="Usage: demo [options]"
. {ROOT}/utils/parse_options.sh
echo "stage=$stage train_set=$train_set rest=$*"
"""


def call(tmp_path, *args):
    s = tmp_path / "demo.sh"
    s.write_text(SCRIPT)
    s.chmod(0o755)
    return subprocess.run([str(s), *args], capture_output=True, text=True)


def test_sets_declared_options(tmp_path):
    r = call(tmp_path, "--stage", "3", "--train-set", "x y", "pos1")
    assert r.stdout.strip() == "stage=3 train_set=x y rest=pos1"
    assert call(tmp_path, "--train_set=abc").stdout.strip() == "stage=1 train_set=abc rest="


def test_unknown_option_lists_valid_ones(tmp_path):
    r = call(tmp_path, "--stgae", "3")
    assert r.returncode == 1
    assert "invalid option --stgae" in r.stderr
    assert "--stage --train-set" in r.stderr


def test_help_and_config(tmp_path):
    r = call(tmp_path, "--help")
    assert r.returncode == 0
    assert "Usage: demo" in r.stdout
    assert "--train-set" in r.stdout
    (tmp_path / "c.conf").write_text("train_set=from_conf\n")
    assert "train_set=from_conf" in call(tmp_path, "--config", str(tmp_path / "c.conf")).stdout


def test_an_option_can_be_given_twice_with_values_that_look_like_flags(tmp_path):
    # a value holding an "x" once made the option look exported (and so unknown) on its next use
    r = call(tmp_path, "--train_set", "--max_epoch 10", "--train_set", "--max_epoch 10 --seed 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=1 train_set=--max_epoch 10 --seed 1 rest="


def test_exported_variables_are_not_options(tmp_path):
    import os

    env = dict(os.environ, some_exported_var="x")
    s = tmp_path / "demo.sh"
    s.write_text(SCRIPT)
    s.chmod(0o755)
    r = subprocess.run([str(s), "--some-exported-var", "y"], capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert "invalid option --some-exported-var" in r.stderr
