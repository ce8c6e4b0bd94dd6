"""Checkpoint I/O on the ground floor: every file a user hands us is read weights-only, and
every file we write appears whole or not at all.

- :func:`safe_load`: ``torch.load(weights_only=True)`` with errors that name the file; the
  data-only objects of released fairseq checkpoints (its ``Dictionary``, ``argparse.Namespace``,
  omegaconf configs, numpy scalars) are rebuilt as plain stand-ins (:func:`plain_config` unwraps
  omegaconf's).
- :func:`atomic_path` / :func:`atomic_save`: write to a temp file beside the target, then rename.
- :func:`require_keys`: a missing key is a :class:`CheckpointError` naming what lacks it.

Every layer that reads or writes checkpoints (teacher, student, trainer, ESPnet glue) uses these.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, of an unknown format, or lacks keys."""


class FairseqDictionary:
    """Stand-in for ``fairseq.data.dictionary.Dictionary``, which released fairseq HuBERT
    checkpoints pickle in ``task_state``. Unpickling it sets plain attributes (``symbols``,
    ``count``, ``indices``, the special indices) and runs no code of fairseq's."""

    def __repr__(self) -> str:
        return f"FairseqDictionary({len(getattr(self, 'symbols', []))} symbols)"


class _Namespace:
    """Stand-in for ``argparse.Namespace`` (the ``args`` of older fairseq checkpoints): attributes only;
    :func:`plain_config` turns it into a dict."""


class OmegaConfData:
    """Stand-in for omegaconf's containers (``DictConfig``, ``ListConfig``), value nodes and their
    metadata, which fairseq checkpoints written before ``cfg`` was saved as a plain container pickle
    (their state is attributes only: ``_content``, ``_val``, ``_metadata``, ``_parent``).
    :func:`plain_config` turns them into dicts, lists and values; no code of omegaconf's runs."""


class _TypingAny:
    """Stand-in for ``typing.Any`` (omegaconf's metadata names it as a type)."""


_OMEGACONF_NAMES = ["omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig", "omegaconf.base.Metadata",
                    "omegaconf.base.ContainerMetadata"] + [
    f"omegaconf.nodes.{n}" for n in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode",
                                     "PathNode", "ValueNode")]

# Objects, beyond tensors and builtins, that released checkpoints carry and that are data only:
# (stand-in class, the name the pickle uses). torch's weights-only unpickler builds them by setting
# their __dict__; it still refuses every other global.
_DATA_GLOBALS = [
    (FairseqDictionary, "fairseq.data.dictionary.Dictionary"),
    (_Namespace, "argparse.Namespace"),
    (_TypingAny, "typing.Any"),
    collections.defaultdict,  # omegaconf's resolver cache: defaultdict(dict)
    dict, list, int, float, str, bool,  # omegaconf's metadata names types (a container's, a key's)
] + [(OmegaConfData, name) for name in _OMEGACONF_NAMES]


def plain_config(obj):
    """A config as plain dicts, lists and values: omegaconf stand-ins (:class:`OmegaConfData`) are
    unwrapped, an ``argparse.Namespace`` becomes the dict of its attributes, everything else is
    returned as it is (recursively inside dicts and lists)."""
    if isinstance(obj, OmegaConfData):
        content = obj.__dict__.get("_content", obj.__dict__.get("_val"))
        return plain_config(content)
    if isinstance(obj, _Namespace):
        return plain_config(dict(obj.__dict__))
    if isinstance(obj, dict):
        return {k: plain_config(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_config(v) for v in obj]
    return obj


def _numpy_globals() -> list:
    """numpy scalars and dtypes (fairseq's logged metrics): safe to rebuild, never callables."""
    import numpy as np

    out = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np._core.multiarray.scalar, np.dtype]
    out += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    return out


def _load_error(path: Path, e: Exception) -> str:
    """One line saying why ``path`` is not a weights-only checkpoint (never "use weights_only=False")."""
    text = str(e)
    glob = re.search(r"GLOBAL ([\w.]+)", text)
    if glob:
        return (f"{path}: holds a pickled Python object ({glob.group(1)}) besides weights; espnet_distill never "
                "unpickles such files (that can run code). Save its state dicts alone, or convert it with "
                "python -m espnet_distill.bin.teacher_info --checkpoint SRC --export DST")
    if "central directory" in text or "zip archive" in text or isinstance(e, EOFError):
        return f"{path}: truncated or corrupted (not a complete torch checkpoint); rewrite or re-download it"
    detail = re.search(r"(Unsupported operand \d+|invalid load key[^.\n]*)", text)
    return f"{path}: not a torch checkpoint, or corrupted ({detail.group(1) if detail else type(e).__name__})"


def safe_load(path: str | os.PathLike) -> dict:
    """``torch.load(weights_only=True)`` with errors that name the file. Besides tensors and
    builtins, the data-only objects of released fairseq checkpoints (``Dictionary``, ``Namespace``,
    numpy scalars) are rebuilt as plain stand-ins; anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        with torch.serialization.safe_globals(_DATA_GLOBALS + _numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(_load_error(path, e)) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    return obj


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (a format that holds tensors and nothing else), with
    errors that name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a complete .safetensors file ({str(e).splitlines()[0][:120]}); "
                              "rewrite or re-download it") from None


@functools.lru_cache(maxsize=1)
def new_file_mode() -> int:
    """A new file's mode under the process's umask (read once: os.umask can only be read by setting it)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _file_mode(path: Path) -> int:
    """The mode a rewritten ``path`` keeps: its own, or a new file's."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return new_file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp file in ``path``'s folder for the block to write; renamed onto ``path`` when the block
    ends without error, removed otherwise (never a half-written file at ``path``). The file gets the
    mode ``path`` had, or a new file's mode (mkstemp's own is 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if is_disk_full(e):
            raise DiskFullError(f"{path}: not written: the disk is full ({disk_free(path.parent)} free in "
                                f"{path.parent}); free some space and rerun (the earlier file, if any, is "
                                "unchanged)") from None
        raise


class DiskFullError(OSError):
    """A file could not be written because its file system is full (the message names the file)."""


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` means "no space left": ENOSPC / EDQUOT, or torch's zip writer's own way of
    saying so (``unexpected pos N vs M``, ``file write failed``)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(e, RuntimeError) and ("unexpected pos" in str(e) or "file write failed" in str(e))


def disk_free(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    return f"{free / 2**20:.1f} MiB"


def atomic_save(obj: dict, path: str | os.PathLike) -> None:
    """torch.save to a temp file in the same folder, then rename (never a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def require_keys(d: dict, keys: list[str], what: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise CheckpointError(f"{what}: missing keys {missing} (has {sorted(d)[:12]})")
