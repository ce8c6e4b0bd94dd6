"""distill_train's errors: a bad data dir, a corrupted checkpoint to resume and a full disk each end
the run with one clear line (no traceback), and nothing already written is lost."""
from __future__ import annotations

import logging

import pytest
import torch
import yaml
from helpers import make_data_dir, tiny_student_conf, tiny_teacher

from espnet_distill.bin import distill_train
from espnet_distill.teacher.checkpoints import save_hubert


@pytest.fixture
def run(tmp_path):
    train = make_data_dir(tmp_path, {f"spk{i % 2}-{i:02d}": (f"spk{i % 2}", "a") for i in range(4)}, "train")
    valid = make_data_dir(tmp_path, {"v0": ("v", "a")}, "valid")
    save_hubert(tmp_path / "teacher.pt", tiny_teacher().model)
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump({"backend": "local", "path": str(tmp_path / "teacher.pt")}))
    conf = tiny_student_conf()
    conf["train"] = {"max_steps": 2, "global_batch_size": 4, "ckpt_every": 1, "valid_every": 2}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(conf))

    def go(valid_dir=valid, outdir=tmp_path / "out") -> int:
        return distill_train.main(["--config", str(tmp_path / "c.yaml"), "--teacher", str(tmp_path / "teacher.yaml"),
                                   "--train-dir", str(train), "--valid-dir", str(valid_dir), "--outdir", str(outdir)])
    return go


def test_a_missing_data_dir_is_one_line(run, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert run(valid_dir=tmp_path / "nowhere") == 1
    assert "nowhere" in caplog.text


def test_a_corrupted_checkpoint_to_resume_is_one_line_and_kept(run, tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level(logging.ERROR):
        assert run() == 1
    assert "checkpoint.pt: " in caplog.text
    assert "corrupted" in caplog.text
    assert (out / "checkpoint.pt").read_bytes() == b"PK\x03\x04 cut short"


def test_a_full_disk_names_the_file_and_keeps_the_last_checkpoint(run, tmp_path, caplog, monkeypatch):
    assert run() == 0
    before = (tmp_path / "out/checkpoint.pt").read_bytes()
    real_save = torch.save

    def full(obj, f, *a, **kw):  # what torch's zip writer raises when the disk fills up mid-write
        real_save(obj, f, *a, **kw)
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 155584 vs 155472")

    monkeypatch.setattr(torch, "save", full)
    with caplog.at_level(logging.ERROR):
        assert run(outdir=tmp_path / "out2") == 1
    assert "checkpoint.pt: not written: the disk is full (" in caplog.text
    assert (tmp_path / "out/checkpoint.pt").read_bytes() == before
    assert not list((tmp_path / "out2").glob(".*.tmp"))
