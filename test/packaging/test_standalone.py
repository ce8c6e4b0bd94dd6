"""A clone with nothing beside it: the tests and recipes read nothing outside the repository."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from helpers import FSDD_RECORDINGS, ROOT

OUTSIDE = re.compile(r"\.\./shared|parents\[\d\]\.parent|ROOT\.parent|MAIN_ROOT}/\.\./")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def test_nothing_under_test_or_egs2_reads_outside_the_repository():
    offenders = []
    for name in tracked_files():
        if name.startswith(("test/", "egs2/")) and name.endswith((".py", ".sh", ".yaml")):
            for i, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1):
                if OUTSIDE.search(line) and name != "test/packaging/test_standalone.py":
                    offenders.append(f"{name}:{i}: {line.strip()}")
    assert offenders == []
    assert FSDD_RECORDINGS.is_relative_to(ROOT)
    assert len(list(FSDD_RECORDINGS.glob("*.wav"))) == 140
    assert "CC BY-SA 4.0" in (FSDD_RECORDINGS.parent / "README.md").read_text()


@pytest.mark.slow  # a pytest run of its own
def test_a_copy_of_the_checkout_runs_its_real_speech_tests_alone(tmp_path):
    """The checkout's files copied to tmp/alone/clone, where no ../shared exists: the tests that
    read FSDD speech pass there, on the copy's own audio."""
    clone = tmp_path / "alone" / "clone"
    for name in tracked_files():
        dst = clone / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dst)
    assert not (clone.parent / "shared").exists()
    tests = ["test/espnet_distill/corpora/test_fsdd.py", "test/espnet_distill/data/test_dump.py"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=clone,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    assert " passed" in r.stdout
