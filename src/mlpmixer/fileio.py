"""Crash-safe file writing: a file is either its old complete self or its new complete self.

Writes go to a temporary file in the same directory, are flushed and fsynced, then renamed
over the target (atomic on POSIX and Windows); the directory is fsynced so the rename
survives a power cut. An error while writing (disk full, Ctrl-C) removes the temporary file
and leaves the previous version untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the umask (mkstemp gives 0o600)."""
    return 0o666 & ~_umask()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically.

    The caller writes the whole file to the yielded path (with any library); nothing is
    renamed if the block raises.
    """
    target = Path(target)
    if target.exists() and not target.is_file():  # the rename would replace /dev/null (root)
        raise ConfigError(f"{target} exists and is not a regular file; give a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike[str], data: Any) -> None:
    """``data`` as indented JSON (the form every results file of this package has)."""
    atomic_write_text(target, json.dumps(data, indent=2) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _carry_over(old: Path, new: Path) -> None:
    """Entries of ``old`` that ``new`` lacks (a README, the user's own files) are kept."""
    for entry in old.iterdir():
        dest = new / entry.name
        if dest.exists() or dest.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dest, symlinks=True)
            continue
        try:
            os.link(entry, dest, follow_symlinks=False)
        except OSError:
            shutil.copy2(entry, dest, follow_symlinks=False)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success it becomes ``target`` atomically.

    Files of an existing ``target`` that the new folder does not replace are carried over.
    The swap is one ``renameat2(RENAME_EXCHANGE)`` where the system has it; elsewhere the old
    folder is renamed aside first, leaving a short window with no ``target`` (never a folder
    mixing old and new files). Nothing changes if the block raises.
    """
    target = Path(target)
    if target.is_symlink():  # replace the folder the link points to, keep the link
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        for file in tmp.iterdir():
            if file.is_file():
                # the mode open() gives (0644 under umask 022): safetensors writes 0600,
                # which hides model.safetensors from the group on a shared file system
                os.chmod(file, _default_mode())
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
        _fsync_dir(tmp)
        if not target.exists():
            os.rename(tmp, target)
        else:
            _carry_over(target, tmp)
            if not _exchange(tmp, target):
                aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
                aside.rmdir()
                os.rename(target, aside)
                os.rename(tmp, target)
                tmp = aside
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
