"""A stage-1 rerun that changes only the audio (same tables) reruns the stages that read it."""
from __future__ import annotations

import os
import subprocess

import pytest
import torch
import yaml
from helpers import recipe_env, released_fairseq_file, write_wav
from test_signals import STAGE1, data_sh, make_sets
from test_synth_en_stage1 import synth_recipe
from test_synth_en_stages import TEACHER

from espnet_distill.nn.hubert import HubertConfig, HubertModel

pytestmark = pytest.mark.slow


def test_new_audio_under_the_same_tables_reruns_stage_2(tmp_path):
    r = synth_recipe(tmp_path / "recipe")
    src = make_sets(tmp_path)
    (r / "local/data.sh").write_text(data_sh(src, False, tmp_path))
    torch.manual_seed(0)
    released_fairseq_file(r / "hubert_tiny.pt", HubertModel(HubertConfig(**TEACHER["model"], num_classes=4)).eval(),
                          [str(i) for i in range(4)])
    (r / "conf/teacher/local.yaml").write_text(yaml.safe_dump({"backend": "local", "path": "hubert_tiny.pt"}))
    args = [*STAGE1[:4], "2", *STAGE1[5:], "--teacher_config", "conf/teacher/local.yaml"]
    p = subprocess.run(args, cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    p = subprocess.run(args, cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("already done") == 2, p.stderr[-3000:]
    wav = next(iter((r / "data/train/wav.scp").read_text().split()[1:2]))
    st = os.stat(wav)
    write_wav(tmp_path / "new.wav", 0.3, freq=1234)
    os.replace(tmp_path / "new.wav", wav)  # new content, same length, same tables
    assert os.stat(wav).st_size == st.st_size
    p = subprocess.run(args, cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Stage 1 (data): already done" in p.stderr
    assert "Stage 2 (teacher): options changed since the last run" in p.stderr
