"""egs2/TEMPLATE/distill1/path.sh: a recipe runs its own checkout's package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_recipe_imports_its_own_checkout_not_the_shared_venvs(tmp_path):
    """A second checkout that shares this venv (whose editable install points here) must run its
    own espnet_distill: a fresh clone checked with `make demo VENV=...` otherwise runs this tree."""
    clone = tmp_path / "clone"
    (clone / "espnet_distill").mkdir(parents=True)
    (clone / "espnet_distill/__init__.py").write_text("")
    recipe = clone / "egs2/TEMPLATE/distill1"
    recipe.mkdir(parents=True)
    shutil.copy(ROOT / "egs2/TEMPLATE/distill1/path.sh", recipe / "path.sh")
    venv = Path(sys.prefix)
    r = subprocess.run(["bash", "-c", 'set -euo pipefail; . ./path.sh; python -c "import espnet_distill; '
                        'print(espnet_distill.__file__)"'], cwd=recipe, capture_output=True, text=True,
                       env={**os.environ, "ESPNET_DISTILL_VENV": str(venv), "PYTHONPATH": ""})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == clone / "espnet_distill/__init__.py"
