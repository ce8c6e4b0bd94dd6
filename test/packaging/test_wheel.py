"""A non-editable install ships the whole package: every module of espnet_distill is in the wheel."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_holds_every_module(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "espnet_distill", src / "espnet_distill", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("espnet_distill-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(src)) for p in (src / "espnet_distill").rglob("*.py")}
    assert modules - shipped == set()
    assert "espnet_distill/student/model.py" in shipped and "espnet_distill/nn/masking.py" in shipped
