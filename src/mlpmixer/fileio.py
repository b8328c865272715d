"""Crash-safe file writing: a file is either its old complete self or its new complete self.

Writes go to a temporary file in the same directory, are flushed and fsynced, then renamed
over the target (atomic on POSIX and Windows); the directory is fsynced so the rename
survives a power cut. An error while writing (disk full, Ctrl-C) removes the temporary file
and leaves the previous version untouched; a full disk is reported as `DiskFullError`, whatever
the writing library raised (torch's C++ writer says ``RuntimeError ... unexpected pos``).

Temporary names carry the writer's pid and host (``.NAME.mlpmixer-PID@HOST.XXXX.tmp``): a
process killed with ``kill -9`` cannot remove its temporary, so the next save of the same
target removes those whose owner no longer runs on this host.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError, DiskFullError, MixerError


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


def _host_tag() -> str:
    """Six hex digits naming this host: a pid means nothing on another machine (shared disks)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def temp_prefix(target: Path) -> str:
    """The start of every temporary name this process uses for ``target``."""
    return f".{target.name}.mlpmixer-{os.getpid()}@{_host_tag()}."


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    try:  # Linux: the state letter follows the command name in parentheses
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove temporaries of ``target`` left by dead writers (kill -9, power cut) on this host.

    Only names this module makes are touched (``.NAME.mlpmixer-PID@HOST.*``), and only when
    PID does not run here; returns what was removed.
    """
    pattern = re.compile(
        re.escape(f".{target.name}.mlpmixer-") + r"(\d+)@" + re.escape(_host_tag()) + r"\."
    )
    removed = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            match = pattern.match(entry.name)
            if not match or process_alive(int(match.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _free_bytes(directory: Path) -> int | None:
    try:
        stats = os.statvfs(directory)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use the reserve
    return blocks * stats.f_frsize


FULL_BELOW_BYTES = 1 << 20  # a failed write with less than this left was the full disk


def is_disk_full(err: BaseException, directory: Path) -> bool:
    """Whether ``err``, raised while writing into ``directory``, means the disk is full.

    ENOSPC/EDQUOT say so directly; libraries that write from C++ or Rust put the system's
    words in their message (safetensors) or only their own (torch.save to a path:
    "unexpected pos"), so for their errors the free space left decides.
    """
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, OSError | MixerError) or not isinstance(err, Exception):
        return False
    if any(words in str(err) for words in (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))):
        return True
    writer = isinstance(err, RuntimeError) or type(err).__module__.startswith("safetensors")
    free = _free_bytes(directory) if writer else None
    return free is not None and free < FULL_BELOW_BYTES


def disk_full_error(target: Path, kept: bool) -> DiskFullError:
    what = f"the previous {target.name} is kept" if kept else "nothing was written"
    return DiskFullError(
        f"cannot write {target}: the disk is full; {what}. Free space and run again", str(target)
    )


def _writable_file(target: Path) -> None:
    if target.exists() and not target.is_file():  # the rename would replace /dev/null (root)
        raise ConfigError(f"{target} exists and is not a regular file; give a file path")


def _new_temp(target: Path) -> Path:
    """An empty temporary file next to ``target`` (after removing stale ones of dead writers)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent)
    except OSError as err:
        _raise_if_full(err, target)  # not even an empty file fits (no inodes left)
        raise
    os.close(fd)
    return Path(name)


def _make_durable(tmp: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, _default_mode())


def _raise_if_full(err: BaseException, target: Path) -> None:
    """`DiskFullError` for ``target`` if ``err`` came from a full disk (call before cleaning up)."""
    if not isinstance(err, DiskFullError) and is_disk_full(err, target.parent):
        raise disk_full_error(target, target.exists()) from err


@contextlib.contextmanager
def _full_disk_named(target: Path) -> Iterator[None]:
    try:
        yield
    except Exception as err:  # checked while the temporaries still fill the disk
        _raise_if_full(err, target)
        raise


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically.

    The caller writes the whole file to the yielded path (with any library); nothing is
    renamed if the block raises. A full disk raises `DiskFullError` (``target`` untouched).
    """
    target = Path(target)
    _writable_file(target)
    tmp = _new_temp(target)
    try:
        with _full_disk_named(target):
            yield tmp
            _make_durable(tmp)
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_pair(
    target: str | os.PathLike[str], report: str | os.PathLike[str]
) -> Iterator[tuple[Path, Path]]:
    """Temporary paths for a file and the ``report`` that describes it, swapped in together.

    Both are written and fsynced first; only then is the old report removed, the file
    renamed over ``target``, and the new report renamed into place, in that order. A crash
    between these steps leaves a file without a report, never a report that describes
    another file. If the block raises (a failed check, a full disk), neither path changes.
    """
    target, report = Path(target), Path(report)
    _writable_file(target)
    _writable_file(report)
    tmp = _new_temp(target)
    try:
        tmp_report = _new_temp(report)
        try:
            with _full_disk_named(target):
                yield tmp, tmp_report
                _make_durable(tmp)
                _make_durable(tmp_report)
                report.unlink(missing_ok=True)
                os.replace(tmp, target)
                os.replace(tmp_report, report)
            _fsync_dir(target.parent)
        finally:
            tmp_report.unlink(missing_ok=True)
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
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        with _full_disk_named(target):
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
                    aside = Path(tempfile.mkdtemp(prefix=temp_prefix(target), dir=target.parent))
                    aside.rmdir()
                    os.rename(target, aside)
                    os.rename(tmp, target)
                    tmp = aside
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_new_dir(
    folder: Path, ours: Any, what: str, ignore: tuple[str, ...] = (), option: str = "--out"
) -> list[str]:
    """Refuse (`ConfigError`, exit 2, nothing written) an output folder that is not new, empty
    or ours: a file, or a non-empty folder for which ``ours(folder)`` is False (a user's folder,
    or ``--out .``, is never written into). Returns its entries (less ``ignore``).

    ``what`` names what is written there ("run", "shard set") and ``option`` the argument
    that chose the folder, in the message.
    """
    if not folder.exists() and not folder.is_symlink():
        return []
    if not folder.is_dir():
        raise ConfigError(f"the output directory {folder} exists and is not a directory")
    try:
        names = sorted(name for name in os.listdir(folder) if name not in ignore)
    except OSError as err:
        raise ConfigError(f"cannot list the output directory {folder}: {err.strerror}") from err
    if names and not ours(folder):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise ConfigError(
            f"{folder} is not empty ({shown}) and holds no mlpmixer {what}; a new {what} is "
            f"written only into a new or empty directory: choose another {option} (nothing "
            "was written)"
        )
    return names
