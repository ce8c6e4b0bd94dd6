from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT


@pytest.mark.slow
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
    assert "espnet_distill/student/model.py" in shipped
    assert "espnet_distill/nn/masking.py" in shipped
    assert {"espnet_distill/conf/paper/sw.yaml", "espnet_distill/conf/paper/dt_fbank.yaml"} <= shipped  # package data

    # installed from the wheel (not editable) into a folder of its own, the package works there:
    # the students import and the paper configs are found
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                        str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    # the installed wheel, not the checkout
    probe = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
             "import espnet_distill, espnet_distill.student.model as m; from espnet_distill.analysis.benchmark "
             "import PAPER_CONFS; print(espnet_distill.__file__); print(sorted(p.name for p in "
             "PAPER_CONFS.glob('*.yaml')))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")))
    assert r.returncode == 0, r.stderr[-2000:]
    where, configs = r.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site"))
    assert configs == "['dt.yaml', 'dt_fbank.yaml', 'sw.yaml']"
