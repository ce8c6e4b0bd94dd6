"""config_get: the recipes' one way to read a config value, teacher YAMLs with Python's defaults."""
from __future__ import annotations

import pytest
import yaml
from helpers import TINY_PRETRAIN_CONF

from espnet_distill.bin import config_get


def test_teacher_values_come_with_the_dataclasses_defaults(tmp_path, capsys):
    (tmp_path / "pre.yaml").write_text(yaml.safe_dump(TINY_PRETRAIN_CONF))
    (tmp_path / "local.yaml").write_text("path: /x/teacher.pt\n")  # backend omitted: local
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(dict(TINY_PRETRAIN_CONF, kmeans={"n_cluster": 5})))
    cases = [("pre.yaml", "backend", "pretrain"), ("pre.yaml", "kmeans.n_clusters", "100"),
             ("pre.yaml", "iterations", "1"), ("pre.yaml", "mask.length", "5"), ("local.yaml", "backend", "local"),
             ("local.yaml", "format", "auto")]
    for name, key, value in cases:
        assert config_get.main(["--teacher", str(tmp_path / name), key]) == 0
        assert capsys.readouterr().out.strip() == value, (name, key)
    assert config_get.main(["--teacher", str(tmp_path / "typo.yaml"), "backend"]) == 1
    assert "unknown kmeans keys ['n_cluster']" in capsys.readouterr().err
    assert config_get.main([str(tmp_path / "pre.yaml"), "kmeans.n_clusters", "none"]) == 0  # raw: the file only
    assert capsys.readouterr().out.strip() == "none"


@pytest.mark.parametrize("conf,message", [({"backend": "s3prl"}, "needs 'name'"),
                                          ({"backend": "hub"}, "unknown teacher backend 'hub'")])
def test_teacher_errors_name_what_is_wrong(tmp_path, capsys, conf, message):
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(conf))
    assert config_get.main(["--teacher", str(tmp_path / "t.yaml"), "backend"]) == 1
    assert message in capsys.readouterr().err
