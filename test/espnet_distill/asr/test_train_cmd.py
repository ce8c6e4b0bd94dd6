"""The ASR training command line as bin/asr_train completes and checks it."""
from __future__ import annotations

import json

import yaml

from espnet_distill.asr.frontend import described_dim
from espnet_distill.asr.train_cmd import check_specaug, option, with_upstream_architecture


def test_the_last_option_wins_over_the_config():
    assert option(["--x", "1", "--x=2"], "x", {"x": "0"}) == "2"
    assert option([], "x", {"x": "0"}) == "0"


def test_specaug_is_refused_only_where_it_would_mask_the_students_last_layer(tmp_path):
    conf = {"frontend": "distilled", "encoder": "passthrough", "specaug": "specaug"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(conf))
    assert "would mask the student's last layer" in check_specaug(["--config", str(tmp_path / "c.yaml")])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**conf, "encoder": "rnn"}))  # SUPERB: a BLSTM over it
    assert check_specaug(["--config", str(tmp_path / "c.yaml")]) is None
    assert check_specaug(["--config", str(tmp_path / "c.yaml"), "--encoder", "passthrough"]) is not None


def test_a_linear_preencoder_is_given_the_frontends_width(tmp_path, monkeypatch):
    import espnet_distill.asr.frontend as frontend

    described = {"kind": "teacher", "config": {"embed_dim": 40}}
    monkeypatch.setattr(frontend, "describe_upstream", lambda path: described)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"frontend": "distilled", "preencoder": "linear",
                                                     "preencoder_conf": {"output_size": 16}}))
    cmd = with_upstream_architecture(["--config", str(tmp_path / "c.yaml"), "--frontend_conf", "checkpoint=t.pt"])
    assert cmd[-4:] == ["--frontend_conf", "upstream=" + json.dumps(described), "--preencoder_conf", "input_size=40"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"frontend": "distilled", "preencoder": "linear",
                                                     "preencoder_conf": {"input_size": 8, "output_size": 16}}))
    assert "--preencoder_conf" not in with_upstream_architecture(["--config", str(tmp_path / "c.yaml"),
                                                                 "--frontend_conf", "checkpoint=t.pt"])
    assert described_dim({"kind": "student", "config": {"dim": 24}}) == 24
