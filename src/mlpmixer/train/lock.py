"""An exclusive lock on a run directory, so two processes never train into the same one.

The lock is ``RUN/.lock``, held with ``fcntl.flock`` for as long as the process trains: the
operating system releases it when the process exits, however it exits (crash, ``kill -9``),
so a stale lock file is harmless and is never deleted (deleting it would open a race).
The file holds the owner's process id, for the error message.

An flock belongs to the open file description, which a forked child shares: DataLoader
workers, forked while the run trains, held the lock after the trainer was killed until they
noticed they were orphaned (~3 s), and a resume at once was refused naming the dead trainer.
So every forked child closes its copy of the descriptor at once (`os.register_at_fork`): the
lock lives exactly as long as the process that took it. Should the lock still be held while
the recorded owner is dead (a child forked by other means), the message names the processes
that still have the file open, not the dead one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError
from ..fileio import process_alive

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]


class RunDirInUseError(ConfigError):
    """Another process is training in (or resuming) this run directory."""


_HELD: set[int] = set()  # descriptors of the locks this process holds


def _drop_in_child() -> None:
    """After a fork, in the child: close the inherited lock descriptors (see the docstring)."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_drop_in_child)


def _owner(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


def _openers(path: Path) -> list[int]:
    """Pids of the other processes on this host that have ``path`` open (Linux ``/proc``)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or another user's
            if any(os.path.realpath(fd) == str(path) for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    return sorted(pids)


def _in_use(run_dir: Path, fd: int) -> RunDirInUseError:
    """The refusal, naming a live process: the recorded owner, or whoever still holds it."""
    owner = _owner(fd)
    if owner.isdigit() and not process_alive(int(owner)):
        holders = _openers((run_dir / LOCK_FILE).resolve())
        named = ", ".join(map(str, holders)) or "unknown"
        return RunDirInUseError(
            f"{run_dir} is still locked by pid(s) {named}, though the mlpmixer process that "
            f"took the lock (pid {owner}) has ended (its data-loading workers, exiting?); "
            "try again in a few seconds, or stop them"
        )
    return RunDirInUseError(
        f"{run_dir} is in use by another mlpmixer process (pid {owner}); wait for "
        "it to finish or stop it, or choose another --out"
    )


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
            raise _in_use(run_dir, fd) from None
        _HELD.add(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)  # releases the lock
