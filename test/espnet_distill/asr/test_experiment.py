"""Reading an experiment folder: the model file of the selection the model was trained with, the
student it started from, whether it has a decoder; and the command stage 6 asks."""
from __future__ import annotations

import pytest
import yaml

from espnet_distill.asr.experiment import Experiment
from espnet_distill.bin import experiment as experiment_cli
from espnet_distill.config import ConfigError


def exp_with(tmp_path, criteria, files, **conf):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"best_model_criterion": criteria, **conf}))
    for f in files:
        (tmp_path / f).write_bytes(b"")
    return Experiment.read(tmp_path)


def test_the_config_criterion_picks_the_model_file(tmp_path):
    # FSDD's recipe selects by validation CER: its folder has no acc or loss average
    exp = exp_with(tmp_path, [["valid", "cer_ctc", "min"]], ["valid.cer_ctc.ave.pth", "valid.cer_ctc.best.pth",
                                                            "valid.loss.best.pth", "40epoch.pth"])
    assert exp.model_file().name == "valid.cer_ctc.ave.pth"
    (tmp_path / "valid.cer_ctc.ave.pth").unlink()
    assert exp.model_file("auto").name == "valid.cer_ctc.best.pth"  # its own criterion before another one's
    assert exp.model_file("40epoch.pth").name == "40epoch.pth"


def test_the_order_of_criteria_is_kept_and_missing_files_are_named(tmp_path):
    exp = exp_with(tmp_path, [["valid", "loss", "min"], ["valid", "acc", "max"]],
                   ["valid.acc.ave.pth", "valid.loss.ave.pth"])
    assert exp.model_file().name == "valid.loss.ave.pth"
    for f in ("valid.acc.ave.pth", "valid.loss.ave.pth"):
        (tmp_path / f).unlink()
    (tmp_path / "3epoch.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no model file valid.loss.ave.pth or .* \(it has: 3epoch.pth\)"):
        exp.model_file()


def test_student_decoder_and_a_folder_that_is_not_an_experiment(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    exp = exp_with(tmp_path / "a", [], [], frontend="distilled", frontend_conf={"checkpoint": "s.pt"}, decoder=None)
    assert exp.student_checkpoint == "s.pt"
    assert not exp.has_decoder
    assert exp_with(tmp_path / "b", [], [], frontend="default", decoder="transformer").has_decoder
    assert Experiment.read(tmp_path / "b").student_checkpoint is None
    with pytest.raises(ConfigError, match="no config.yaml: not an ESPnet experiment folder"):
        Experiment.read(tmp_path)


def test_the_command_stage_6_asks(tmp_path, capsys):
    exp_with(tmp_path, [["valid", "loss", "min"]], ["valid.loss.ave.pth"], decoder="transformer")
    assert experiment_cli.main(["model-file", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "valid.loss.ave.pth")
    assert experiment_cli.main(["has-decoder", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "true"
    assert experiment_cli.main(["model-file", str(tmp_path), "--name", "x.pth"]) == 1
    assert "no model file x.pth (it has: valid.loss.ave.pth)" in capsys.readouterr().err
