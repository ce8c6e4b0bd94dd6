"""egs2/librispeech/distill1/local/data.sh on fake trees with the real layout: a corpus already
unpacked, one downloaded from a mirror (file:// URLs to archives the test builds), and a mirror
that cannot be reached."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import copy_recipe, recipe_env
from helpers import librispeech_chapter as chapter

pytestmark = pytest.mark.slow  # a recipe run

SPLITS = ("dev-clean", "dev-other", "test-clean", "test-other", "train-clean-100", "train-clean-360", "train-other-500")


def corpus(root: Path) -> tuple[Path, Path]:
    """LibriSpeech/<split>/ (one or two chapters each) and librispeech_finetuning/{1h/0-5,9h}."""
    ls = root / "LibriSpeech"
    for i, split in enumerate(SPLITS):
        chapter(ls / split, str(10 + i), "100", 2)
    chapter(ls / "train-clean-100", "99", "200", 1)
    (ls / "LICENSE.TXT").write_text("CC BY 4.0\n")
    ft = root / "librispeech_finetuning"
    for i in range(6):
        chapter(ft / "1h" / str(i) / "clean", f"30{i}", "500", 1)
    chapter(ft / "9h" / "other", "400", "600", 2)
    return ls, ft


def recipe(tmp: Path) -> Path:
    return copy_recipe("librispeech", tmp / "recipe")


def run(r: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """local/data.sh with db.sh's defaults except for the corpus variables given in ``env``."""
    e = recipe_env(**env)
    for k in ("LIBRISPEECH", "LIBRILIGHT", "LIBRISPEECH_URL", "LIBRILIGHT_URL", "LIBRISPEECH_LM", "LIBRISPEECH_LM_URL"):
        if k not in env:
            e.pop(k, None)
    return subprocess.run(["local/data.sh", *args], cwd=r, env=e, capture_output=True, text=True)


def utts(d: Path) -> int:
    return len((d / "text").read_text().splitlines())


def lm_text(path: Path) -> Path:
    """librispeech-lm-norm.txt.gz in small: upper-case sentences, no ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("A BOOK SENTENCE\nANOTHER ONE\n")
    return path


def test_unpacked_corpus(tmp_path):
    ls, ft = corpus(tmp_path / "corpora")
    r = recipe(tmp_path)
    lm = lm_text(tmp_path / "corpora/lm-norm.txt.gz")
    p = run(r, "--train_960", "false", "--download", "false", LIBRISPEECH=str(ls), LIBRILIGHT=str(ft))
    assert p.returncode == 1  # the LM text is wanted (--lm_text true) and is not there: said before any work
    assert "Error: downloads/librispeech-lm-norm.txt.gz not found (--download false)." in p.stderr
    assert "Put librispeech-lm-norm.txt.gz (openslr.org resource 11) at downloads/librispeech-lm-norm.txt.gz" \
        in p.stderr
    assert not (r / "data").exists()
    p = run(r, "--train_960", "false", "--download", "false", LIBRISPEECH=str(ls), LIBRILIGHT=str(ft),
            LIBRISPEECH_LM=str(lm))
    assert p.returncode == 0, p.stderr[-2000:]
    sizes = {d: utts(r / "data" / d) for d in ("dev_clean", "dev_other", "test_clean", "test_other",
                                               "train_clean_100", "train_10min", "train_1h", "train_10h")}
    assert sizes == {"dev_clean": 2, "dev_other": 2, "test_clean": 2, "test_other": 2, "train_clean_100": 3,
                     "train_10min": 1, "train_1h": 6, "train_10h": 8}
    assert not (r / "data/train_960").exists()
    shutil.rmtree(ls / "test-other")
    p = run(r, "--train_960", "false", "--download", "false", LIBRISPEECH=str(ls), LIBRILIGHT=str(ft))
    assert p.returncode == 1
    assert f"Error: {ls}/test-other not found (--download false)" in p.stderr
    assert f"Unpack test-other.tar.gz from LibriSpeech (openslr.org resource 12) so that {ls}/test-other/" in p.stderr


def test_downloads_what_is_missing(tmp_path):
    ls, ft = corpus(tmp_path / "corpora")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for split in SPLITS:
        with tarfile.open(mirror / f"{split}.tar.gz", "w:gz") as tar:
            tar.add(ls / split, arcname=f"LibriSpeech/{split}")
            tar.add(ls / "LICENSE.TXT", arcname="LibriSpeech/LICENSE.TXT")
    with tarfile.open(mirror / "librispeech_finetuning.tgz", "w:gz") as tar:
        tar.add(ft, arcname="librispeech_finetuning")
    r = recipe(tmp_path)
    urls = {"LIBRISPEECH_URL": mirror.as_uri(), "LIBRILIGHT_URL": (mirror / "librispeech_finetuning.tgz").as_uri(),
            "LIBRISPEECH_LM_URL": lm_text(mirror / "librispeech-lm-norm.txt.gz").as_uri()}
    p = run(r, **urls)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("Downloading file://") == 9
    assert gzip.open(r / "downloads/librispeech-lm-norm.txt.gz", "rt").read() == "A BOOK SENTENCE\nANOTHER ONE\n"
    assert (r / "downloads/LibriSpeech/dev-clean").is_dir()
    assert (r / "downloads/librispeech_finetuning/9h").is_dir()
    assert (r / "downloads/archives/train-other-500.tar.gz").is_file()
    assert utts(r / "data/train_960") == 7
    assert utts(r / "data/train_10h") == 8
    assert not list((r / "downloads").rglob(".unpacking.*"))
    p = run(r, **urls)  # everything is there now: nothing is downloaded again
    assert p.returncode == 0
    assert "Downloading" not in p.stderr


def test_unreachable_mirror_says_what_to_put_where(tmp_path):
    r = recipe(tmp_path)
    gone = (tmp_path / "no_mirror").as_uri()
    p = run(r, "--librilight", "false", LIBRISPEECH_URL=gone)
    assert p.returncode == 1
    assert f"Error: LibriSpeech dev-clean could not be downloaded from {gone}/dev-clean.tar.gz" in p.stderr
    want = "Unpack dev-clean.tar.gz from LibriSpeech (openslr.org resource 12) so that downloads/LibriSpeech/dev-clean/"
    assert want in p.stderr
    assert not (r / "data").exists()
