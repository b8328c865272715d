"""An exclusive lock on a run directory, so two processes never train into the same one.

The lock is ``RUN/.lock``, held with ``fcntl.flock`` for as long as the process trains: the
operating system releases it when the process exits, however it exits (crash, ``kill -9``),
so a stale lock file is harmless and is never deleted (deleting it would open a race).
The file holds the owner's process id, for the error message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]


class RunDirInUseError(ConfigError):
    """Another process is training in (or resuming) this run directory."""


def _owner(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold the lock of ``run_dir`` (created if needed) for the ``with`` block.

    Raises `RunDirInUseError` (exit code 2) naming the other process's pid when it is held.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    if run_dir.exists() and not run_dir.is_dir():  # e.g. --out /dev/null
        raise ConfigError(f"the run directory {run_dir} exists and is not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirInUseError(
                f"{run_dir} is in use by another mlpmixer process (pid {_owner(fd)}); wait for "
                "it to finish or stop it, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock
