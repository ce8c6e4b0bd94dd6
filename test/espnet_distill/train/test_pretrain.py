"""HuBERT pretraining: the typed config, the task's loss, and a run that writes a teacher."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import TINY_PRETRAIN_CONF, pretrain_cmd

from espnet_distill.config import ConfigError
from espnet_distill.losses import masked_prediction_loss, mean
from espnet_distill.teacher.checkpoints import load_hubert
from espnet_distill.train.pretrain import PretrainConfig


@pytest.mark.slow
def test_pretraining_writes_teacher_summary_and_curves(pretrain_corpus, tmp_path):
    r = subprocess.run(pretrain_cmd(pretrain_corpus, tmp_path / "run"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "run/summary.json").read_text())
    for k in ("params", "train_hours", "kmeans_inertia", "dev_masked_acc", "dev_majority_rate"):
        assert s[k] is not None, k
    assert (tmp_path / "run/curves.png").stat().st_size > 1000
    curves = json.loads((tmp_path / "run/curves.json").read_text())
    assert curves["train"]["step"] == list(range(1, 9))
    model, meta = load_hubert(tmp_path / "run/teacher.pt")
    assert model.has_codebook
    assert model.cfg.num_classes == 8
    assert meta["format"] == "espnet_distill"
    saved = yaml.safe_load((tmp_path / "run/config.yaml").read_text())
    assert saved["train"]["max_steps"] == 8
    assert saved["model"]["embed_dim"] == 32


def test_pretrain_config_is_typed_with_defaults_and_clear_errors():
    conf = PretrainConfig.from_dict(TINY_PRETRAIN_CONF)
    assert conf.kmeans.n_clusters == 100
    assert conf.kmeans.sample_frames == 200_000  # defaults, in one place
    assert conf.mask.prob == 0.8
    assert conf.mask.length == 5
    assert conf.mask.nomask_weight == 0.0
    assert conf.train.max_steps == 8
    assert conf.iterations == 1
    assert conf.iter2_layer == 4
    assert conf.hubert_config(8).num_classes == 8
    assert conf.hubert_config(8).embed_dim == 32
    bad = [
        (dict(TINY_PRETRAIN_CONF, mask={"prob": 1.5}), r"mask.prob = 1.5: expected in \[0, 1\]"),
        (dict(TINY_PRETRAIN_CONF, kmeans={"n_cluster": 50}), r"unknown kmeans keys \['n_cluster'\]"),
        ({k: v for k, v in TINY_PRETRAIN_CONF.items() if k != "model"}, "missing section 'model'"),
        (dict(TINY_PRETRAIN_CONF, iterations="two"), "iterations: expected an integer"),
        (dict(TINY_PRETRAIN_CONF, model=dict(TINY_PRETRAIN_CONF["model"], embed_dm=4)), "embed_dm"),
    ]
    for conf, message in bad:
        with pytest.raises((ConfigError, ValueError), match=message):
            PretrainConfig.from_dict(conf)


def test_masked_prediction_loss_weights_the_unmasked_frames():
    """fairseq's hubert criterion: summed cross-entropies over the frames that take part."""
    torch.manual_seed(0)
    lm, tm = torch.randn(7, 5), torch.randint(0, 5, (7,))
    lu, tu = torch.randn(4, 5), torch.randint(0, 5, (4,))
    loss, stats = masked_prediction_loss(lm, tm)
    assert float(loss[1]) == 7
    torch.testing.assert_close(mean(loss), F.cross_entropy(lm, tm))
    assert float(mean(stats["acc"])) == float((lm.argmax(-1) == tm).float().mean())
    assert "loss_nomask" not in stats
    loss, stats = masked_prediction_loss(lm, tm, lu, tu, nomask_weight=0.5)
    assert float(loss[1]) == 11
    expected = (F.cross_entropy(lm, tm, reduction="sum") + 0.5 * F.cross_entropy(lu, tu, reduction="sum")) / 11
    torch.testing.assert_close(mean(loss), expected)
    torch.testing.assert_close(mean(stats["loss_nomask"]), F.cross_entropy(lu, tu))
    loss0, _ = masked_prediction_loss(lm, tm, lu, tu, nomask_weight=0.0)  # weight 0: masked frames only
    empty, _ = masked_prediction_loss(lm, tm, lu[:0], tu[:0], nomask_weight=0.5)  # no unmasked frame
    torch.testing.assert_close(mean(loss0), F.cross_entropy(lm, tm))
    torch.testing.assert_close(mean(empty), mean(loss0))
