"""What data dirs hold, as one short key: their tables and the files their audio is read from.

A recipe stage keys its results on it, so that a stage-1 rerun that changes the tables, or only
the audio, reruns the stages that read the dirs. Audio files are known by path, size and
modification time (a stat each, no reading): a file rewritten with new content is seen, one
rewritten with the same size and its old mtime put back (``touch -r``, ``cp -p`` of another file)
is not. For a pipe (``cmd ... |``) the key covers the command text and every word of it that
names an existing file; programs the pipe runs and files named only inside scripts are not seen.
"""
from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from espnet_distill.data.audio import entry_kind

TABLES = ("wav.scp", "utt2spk", "segments", "text", "utt2dur")


def audio_files(entry: str) -> list[str]:
    """The files a wav.scp value reads: the file itself, an ark's archive, or the words of a pipe
    command that name existing files (paths as the readers see them: relative to the cwd)."""
    entry = entry.strip()
    kind = entry_kind(entry)
    if kind == "file":
        return [entry]
    if kind == "ark":
        return [entry.rsplit(":", 1)[0]]
    try:
        words = shlex.split(entry[:-1])
    except ValueError:  # unbalanced quotes: the shell will complain; key on the plain words
        words = entry[:-1].split()
    return [w for w in words if os.path.isfile(w)]


def data_key(dirs: Iterable[str | os.PathLike], tables: Iterable[str] = TABLES) -> str:
    """16 hex digits that change when any of ``tables`` of ``dirs`` changes, or the path, size or
    mtime of a file their ``wav.scp`` reads (a missing file counts as such)."""
    h = hashlib.sha256()
    tables = tuple(tables)
    for d in map(Path, dirs):
        h.update(f"dir {d}\n".encode())
        for name in tables:
            if (d / name).is_file():
                h.update(f"table {name}\n".encode())
                h.update((d / name).read_bytes())
        if not (d / "wav.scp").is_file():
            continue
        for line in (d / "wav.scp").read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split(maxsplit=1)
            for f in audio_files(parts[1]) if len(parts) == 2 else ():
                try:
                    st = os.stat(f)
                    h.update(f"{f}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
                except OSError:
                    h.update(f"{f}\tmissing\n".encode())
    return h.hexdigest()[:16]
