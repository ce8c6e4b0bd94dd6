"""transcribe's choice of model file: the averaged model of the selection the model was trained with."""
from __future__ import annotations

import pytest
import yaml

from espnet_distill.asr.transcribe import find_model_file


def exp_with(tmp_path, criteria, files):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"best_model_criterion": criteria}))
    for f in files:
        (tmp_path / f).write_bytes(b"")
    return tmp_path


def test_the_config_criterion_picks_the_model_file(tmp_path):
    # FSDD's recipe selects by validation CER: its folder has no acc or loss average
    exp = exp_with(tmp_path, [["valid", "cer_ctc", "min"]], ["valid.cer_ctc.ave.pth", "valid.cer_ctc.best.pth",
                                                            "valid.loss.best.pth", "40epoch.pth"])
    assert find_model_file(exp).name == "valid.cer_ctc.ave.pth"
    (exp / "valid.cer_ctc.ave.pth").unlink()
    assert find_model_file(exp).name == "valid.cer_ctc.best.pth"  # its own criterion before another one's


def test_the_order_of_criteria_is_kept_and_missing_files_are_named(tmp_path):
    exp = exp_with(tmp_path, [["valid", "loss", "min"], ["valid", "acc", "max"]],
                   ["valid.acc.ave.pth", "valid.loss.ave.pth"])
    assert find_model_file(exp).name == "valid.loss.ave.pth"
    for f in ("valid.acc.ave.pth", "valid.loss.ave.pth"):
        (exp / f).unlink()
    with pytest.raises(FileNotFoundError, match="no model file .*valid.loss.ave.pth.*; give --model-file"):
        find_model_file(exp)


def test_a_folder_without_config_falls_back_to_the_usual_names(tmp_path):
    (tmp_path / "valid.cer_ctc.ave.pth").write_bytes(b"")
    assert find_model_file(tmp_path).name == "valid.cer_ctc.ave.pth"
