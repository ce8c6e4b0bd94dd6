"""utils/download_and_untar.sh: resumed downloads, staged unpacking, broken archives."""
from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "utils/download_and_untar.sh"


def archive(tmp: Path) -> Path:
    src = tmp / "src/corpus"
    (src / "part-a").mkdir(parents=True)
    (src / "part-a/data.bin").write_bytes(bytes(range(256)) * 4000)  # some size, so a partial file can exist
    (src / "README").write_text("readme\n")
    out = tmp / "mirror/corpus.tar.gz"
    out.parent.mkdir()
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname="corpus")
    return out


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_download_strips_and_moves_entries(tmp_path):
    a = archive(tmp_path)
    p = run("--strip-components", "1", a.as_uri(), tmp_path / "arch", tmp_path / "dest")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "dest/part-a/data.bin").stat().st_size == 1024000
    assert (tmp_path / "dest/README").read_text() == "readme\n"
    assert (tmp_path / "arch/corpus.tar.gz").read_bytes() == a.read_bytes()
    assert [x.name for x in (tmp_path / "dest").iterdir() if x.name.startswith(".")] == []


def test_partial_download_is_continued(tmp_path):
    a = archive(tmp_path)
    (tmp_path / "arch").mkdir()
    data = a.read_bytes()
    (tmp_path / "arch/corpus.tar.gz.partial").write_bytes(data[: len(data) // 2])
    p = run(a.as_uri(), tmp_path / "arch", tmp_path / "dest")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "arch/corpus.tar.gz").read_bytes() == data
    assert (tmp_path / "dest/corpus/README").is_file()


def test_failed_and_broken_downloads(tmp_path):
    p = run((tmp_path / "nothing.tar.gz").as_uri(), tmp_path / "arch", tmp_path / "dest")
    assert p.returncode == 3
    assert "downloading file://" in p.stderr
    assert "failed" in p.stderr
    bad = tmp_path / "mirror/bad.tar.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"<html>not found</html>")
    p = run(bad.as_uri(), tmp_path / "arch", tmp_path / "dest")
    assert p.returncode == 3
    assert "is not a complete gzip file" in p.stderr
    assert not (tmp_path / "arch/bad.tar.gz").exists()
    assert not (tmp_path / "arch/bad.tar.gz.partial").exists()
