"""Config checking: every bad value a user may write is a one-line error naming the file and key."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml

from espnet_distill.config import ConfigError, read_yaml
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.teacher.checkpoints import save_hubert
from espnet_distill.train.distill import DistillConfig, InitConfig
from espnet_distill.train.trainer import TrainConfig


@pytest.mark.parametrize("train,message", [
    ({"max_steps": "ten"}, "train.max_steps: expected an integer, got 'ten'"),
    ({"max_steps": 5.5}, "train.max_steps: expected an integer, got 5.5"),
    ({"max_steps": 0}, "train.max_steps = 0: expected at least 1 update"),
    ({"lr": -0.001}, "train.lr = -0.001: expected a positive learning rate"),
    ({"ckpt_every": 0}, "train.ckpt_every = 0: expected at least 1 step"),
    ({"amp": "fp8"}, "train.amp = 'fp8': expected none, fp16 or bf16"),
    ({"cache_audio": "yes"}, "train.cache_audio: expected true or false, got 'yes'"),
    ({"betas": [0.9]}, "train.betas: expected 2 values"),
    ({"max_stpes": 10}, "unknown train keys ['max_stpes']"),
])
def test_train_section_errors(train, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(train)
    assert message in str(e.value)


def test_numbers_written_like_1e_3_are_numbers():
    cfg = TrainConfig.from_dict(yaml.safe_load("lr: 1e-3\nbetas: [0.9, 0.98]\nmax_batch_seconds: 60"))
    assert cfg.lr == 0.001
    assert cfg.betas == (0.9, 0.98)
    assert isinstance(cfg.max_batch_seconds, float)


def test_distill_and_init_sections():
    assert DistillConfig.from_dict({"alpha": "4e-1"}).alpha == 0.4
    with pytest.raises(ConfigError, match=r"unknown distill keys \['alhpa'\]"):
        DistillConfig.from_dict({"alhpa": 0.4})
    with pytest.raises(ConfigError, match=r"unknown init keys \['frontnd'\]"):
        InitConfig.from_dict({"frontnd": True})
    assert InitConfig.from_dict({"layers": {"1": "2"}}).layers == {1: 2}


def test_yaml_syntax_error_names_the_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  lr: 0.1\n  max_steps: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+, column \d+ YAML syntax error"):
        read_yaml(tmp_path / "bad.yaml")


@pytest.mark.slow
def test_distill_train_reports_config_errors_in_one_line(tmp_path):
    torch.manual_seed(0)
    conv = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]
    save_hubert(tmp_path / "t.pt", HubertModel(HubertConfig(conv_layers=conv, embed_dim=32, ffn_dim=32, num_layers=2,
                                                           num_heads=2, conv_pos=8, conv_pos_groups=4)))
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump({"backend": "local", "path": str(tmp_path / "t.pt")}))
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"backend": "local", "path": "x.pt", "formt": "auto"}))
    cases = [
        ({"student": {"frontend": "cnnn"}}, "teacher.yaml", "student.frontend = 'cnnn': expected cnn or fbank"),
        ({"train": {"lr": "fast"}}, "teacher.yaml", "train.lr: expected a number, got 'fast'"),
        ({"distill": {"alhpa": 0.4}}, "teacher.yaml", "unknown distill keys ['alhpa']"),
        ({}, "typo.yaml", "unknown keys ['formt'] for backend 'local'"),
    ]
    for i, (conf, teacher, message) in enumerate(cases):
        (tmp_path / f"c{i}.yaml").write_text(yaml.safe_dump(conf))
        r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.distill_train", "--config",
                            str(tmp_path / f"c{i}.yaml"),
                            "--teacher", str(tmp_path / teacher), "--train-dir", str(tmp_path), "--valid-dir",
                            str(tmp_path), "--outdir", str(tmp_path / "out")], capture_output=True, text=True)
        assert r.returncode == 1, (message, r.stderr[-1500:])
        assert message in r.stderr, (message, r.stderr[-1500:])
        assert "Traceback" not in r.stderr, (message, r.stderr[-1500:])


def test_overrides_from_the_command_line():
    from espnet_distill.config import apply_overrides

    conf = {"train": {"max_steps": 10, "lr": 0.1}, "distill": {"alpha": 0.4}}
    out = apply_overrides(conf, ["train.max_steps=200", "distill.alpha=0", "student.dim=64", "train.betas=[0.9, 0.99]"])
    assert out["train"] == {"max_steps": 200, "lr": 0.1, "betas": [0.9, 0.99]}
    assert out["distill"]["alpha"] == 0
    assert out["student"] == {"dim": 64}
    assert conf["train"]["max_steps"] == 10  # the input is not modified
    with pytest.raises(ConfigError, match="expected SECTION.KEY=VALUE"):
        apply_overrides(conf, ["train.max_steps"])
    with pytest.raises(ConfigError, match="max_steps is not a section"):
        apply_overrides(conf, ["train.max_steps.x=1"])
