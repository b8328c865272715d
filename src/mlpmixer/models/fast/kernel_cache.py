"""Build a C source into a shared library once, cache it, and load only what this process can verify.

A cached binary is code that runs in every process that loads it (its constructors run inside
``dlopen``, before any symbol can be checked), so a file found at the cache path is never
trusted for being there:

* the cache directory (``$MLPMIXER_CACHE/ops``, default ``~/.cache/mlpmixer/ops``) must be
  owned by this user and writable by nobody else (it is created ``0700``); a directory that is
  group- or world-writable, or belongs to someone else, is refused;
* the build writes a tag beside the library (``<name>.so.hmac``): HMAC-SHA256 of its bytes
  under a key kept *outside* the cache, ``$XDG_CONFIG_HOME/mlpmixer/kernel-cache.key``
  (default ``~/.config/mlpmixer``; 32 random bytes, created ``0600`` in a ``0700`` folder). A
  library is loaded only if it is a regular file owned by this user, not writable by others,
  and its bytes carry that tag: whatever else lands in the cache folder (a library and a plain
  digest written there, a cache copied from another machine or account, restored from a
  backup, unpacked from an archive, a folder ``MLPMIXER_CACHE`` was pointed at) is rebuilt
  over and never loaded. Where the key folder cannot be used, nothing is cached or read from
  the cache: the process builds its own library and loads only that. The bytes checked are
  the bytes loaded (copied to a fresh private file for ``dlopen``), so the file cannot be
  swapped between the check and the load;
* what no check here can stop: a process running as this user can read the key (or edit this
  package's own ``.py`` files, or set ``LD_PRELOAD``); the cache defends against other users,
  files that did not come from a build of this user's, corruption and stale builds, not
  against code already running as you;
* a library that fails the check is rebuilt over; one that loads but lacks a symbol or fails
  the caller's self-test is deleted (rebuilt next time) and not used;
* the compiler runs in its own process group with a timeout (``MLPMIXER_CC_TIMEOUT`` seconds,
  default 120): a hanging ``$CC`` is killed, never waited for. A failed or timed-out build
  leaves a marker so that the next processes skip the build for a day instead of failing
  again (delete ``<cache>/ops/*.failed`` to retry at once).

Every failure raises `KernelUnavailable` with a one-line reason; the caller falls back to ATen.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ...cpu_kind import this_cpu
from ...envvars import positive_number
from ...errors import ConfigError

DEFAULT_TIMEOUT_S = 120.0
KEY_NAME = "kernel-cache.key"
_KEY_BYTES = 32
TAG_SUFFIX = ".hmac"
TIMEOUT_ENV = "MLPMIXER_CC_TIMEOUT"
FAILED_MARKER_TTL_S = 24 * 3600.0  # a failed build is retried after a day (or at once, if deleted)
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def _cpu_key() -> bytes:
    """What a ``-march=native`` binary depends on: the CPU's flags (its model where none are listed)."""
    kind = this_cpu()
    return (kind.signature or kind.model).encode()


class KernelUnavailable(RuntimeError):
    """The kernel cannot be built, verified or loaded here; the message says why, in one line."""


def cache_dir() -> Path:
    """``$MLPMIXER_CACHE/ops``, default ``~/.cache/mlpmixer/ops``."""
    root = os.environ.get("MLPMIXER_CACHE") or Path.home() / ".cache" / "mlpmixer"
    return Path(root) / "ops"


def key_dir() -> Path:
    """``$XDG_CONFIG_HOME/mlpmixer``, default ``~/.config/mlpmixer``: where the tag key lives,
    never under ``$MLPMIXER_CACHE`` (a cache folder may come from anywhere)."""
    root = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(root) / "mlpmixer"


def compiler() -> str | None:
    """``$CC`` if set and found on PATH, else the first of cc, gcc, clang; None if none is."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def compile_timeout() -> float:
    """Seconds a compiler call may take (``MLPMIXER_CC_TIMEOUT``, default 120).

    A value that is not a positive number is `KernelUnavailable` naming the variable (the
    caller warns and falls back), never a silent default: the limit the user set must hold.
    """
    try:
        return positive_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
    except ConfigError as err:
        raise KernelUnavailable(str(err)) from None


def run_compiler(command: Sequence[str]) -> str:
    """Run ``command``, return its stdout; `KernelUnavailable` on failure or timeout.

    The command gets its own process group, killed as a whole on timeout: a ``$CC`` script
    that starts a child (``sleep``) must not leave it holding our pipes open.
    """
    timeout = compile_timeout()
    try:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as err:
        raise KernelUnavailable(f"cannot run {command[0]!r}: {err}") from None
    try:
        out, err_text = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise KernelUnavailable(
            f"{command[0]!r} did not finish in {timeout:g} s (MLPMIXER_CC_TIMEOUT); killed"
        ) from None
    if proc.returncode != 0:
        last = (err_text.strip().splitlines() or ["no output"])[-1]
        raise KernelUnavailable(f"{command[0]!r} exited with {proc.returncode}: {last}")
    return out


def _check_private(st: os.stat_result, what: str, path: Path) -> None:
    if st.st_uid != os.getuid():
        raise KernelUnavailable(f"{what} {path} is owned by uid {st.st_uid}, not by this user")
    if st.st_mode & _OTHERS_WRITE:
        raise KernelUnavailable(
            f"{what} {path} is writable by others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run `chmod go-w {path}` or set MLPMIXER_CACHE to a private folder"
        )


def open_private_dir(path: Path) -> int:
    """A descriptor of ``path`` (created 0700 if missing), after checking only we can write it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:
        raise KernelUnavailable(f"cannot use the kernel cache {path}: {err}") from None
    try:
        _check_private(os.fstat(fd), "kernel cache", path)
    except KernelUnavailable:
        os.close(fd)
        raise
    return fd


def _open_file(dir_fd: int, name: str) -> int | None:
    """A descriptor of ``name`` in the directory, or None if absent or not openable as a file.

    Never follows a symlink (O_NOFOLLOW) and never blocks on a FIFO (O_NONBLOCK); what is
    opened is checked with fstat by the caller.
    """
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:  # absent, a symlink (ELOOP), no permission: not a usable cached file
        return None


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _private_file(dir_fd: int, name: str) -> bytes | None:
    """The bytes of ``name`` if it is a regular file of this user that only this user can
    write; None if absent, a symlink or anything else (the caller rebuilds or recreates it)."""
    fd = _open_file(dir_fd, name)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & _OTHERS_WRITE:
            return None
        return _read_all(fd)
    finally:
        os.close(fd)


def _new_key(dir_fd: int) -> None:
    """Create the key file, ``0600``, atomically: a concurrent process's key is never replaced."""
    tmp = f".{KEY_NAME}.{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_KEY_BYTES))
        os.link(tmp, KEY_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileExistsError:
        pass  # another process made it first: use theirs
    finally:
        os.unlink(tmp, dir_fd=dir_fd)


def tag_key() -> bytes | None:
    """The key of the libraries' tags: read (or first made) in `key_dir`; None where that
    folder is unusable (shared, someone else's, not writable)."""
    try:
        dir_fd = open_private_dir(key_dir())
    except KernelUnavailable:
        return None
    try:
        key = _private_file(dir_fd, KEY_NAME)
        if key is None:
            _new_key(dir_fd)
            key = _private_file(dir_fd, KEY_NAME)
    except OSError:
        key = None
    finally:
        os.close(dir_fd)
    return key if key is not None and len(key) == _KEY_BYTES else None


def _tag(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).hexdigest().encode()


def _verified_bytes(dir_fd: int, directory: Path, name: str, key: bytes) -> bytes | None:
    """The bytes of ``name`` if they carry the tag ``name.hmac`` under ``key``; else None.

    A file that is present but does not verify (no tag, another tag, wrong owner or mode, not
    a regular file, a symlink) also gives None: it will be rebuilt over. Nothing is loaded
    before this check, so an untagged library's constructor never runs.
    """
    tag_fd = _open_file(dir_fd, name + TAG_SUFFIX)
    if tag_fd is None:
        return None
    try:
        st = os.fstat(tag_fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        _check_private(st, "kernel tag", directory / (name + TAG_SUFFIX))
        expected = _read_all(tag_fd).strip()
    finally:
        os.close(tag_fd)
    data = _private_file(dir_fd, name)
    if data is None or not hmac.compare_digest(_tag(key, data), expected):
        return None
    return data


def _atomic_write(directory: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _build(
    directory: Path, name: str, cc: str, source: Path, flags: Sequence[str], key: bytes | None,
    link: Sequence[str] = (),
) -> bytes:  # fmt: skip
    """Compile ``source`` (linked with ``link``, e.g. ``-ljpeg``); with a ``key``, into
    ``directory/name`` with its tag (atomic, no half files). Returns the library's bytes."""
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        built, obj = Path(tmp) / name, Path(tmp) / "kernel.o"
        run_compiler([cc, *flags, "-c", str(source), "-o", str(obj)])
        # Linked without the compile flags: GCC links crtfastmath (flush-to-zero for the whole
        # process) into a shared library built with -funsafe-math-optimizations.
        run_compiler([cc, "-shared", "-fopenmp", str(obj), "-o", str(built), "-lm", *link])
        data = built.read_bytes()
        if key is not None:
            _atomic_write(directory, name + TAG_SUFFIX, _tag(key, data))
            os.replace(built, directory / name)
        return data


def _remove(directory: Path, name: str) -> None:
    # (.sha256: the plain digest of builds before the keyed tag)
    for path in (directory / name, directory / (name + TAG_SUFFIX), directory / (name + ".sha256")):
        path.unlink(missing_ok=True)


def _marker_fresh(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < FAILED_MARKER_TTL_S
    except OSError:
        return False


def _load_bytes(data: bytes, directory: Path, name: str) -> ctypes.CDLL:
    """dlopen exactly ``data`` (verified bytes), not whatever ``directory/name`` holds by now.

    The bytes go to a fresh file of a unique name in the private directory, loaded and then
    unlinked: the file cannot change between the check and ``dlopen``, and the loader, which
    reuses an object already loaded under the same name, always sees a new one.
    """
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".load-{name}.", suffix=".so")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return ctypes.CDLL(tmp)
    except OSError as err:
        raise KernelUnavailable(f"cannot load {directory / name}: {err}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def load(
    stem: str,
    source: Path,
    flags: Sequence[str],
    symbols: Sequence[str],
    self_test: Callable[[ctypes.CDLL], str | None],
    link: Sequence[str] = (),
) -> ctypes.CDLL:
    """The library built from ``source`` with ``flags`` (linked with ``link``), verified;
    `KernelUnavailable` if none.

    ``symbols`` must all be exported; ``self_test(lib)`` returns None when the library computes
    what it should, else a reason (then the cached file is deleted and not used).
    """
    cc = compiler()
    if cc is None:
        raise KernelUnavailable("no C compiler found ($CC, cc, gcc, clang)")
    compile_timeout()  # a bad $MLPMIXER_CC_TIMEOUT is said before a build, and leaves no marker
    text = source.read_bytes()
    directory = cache_dir()
    key = tag_key()
    dir_fd = open_private_dir(directory)
    try:
        named = " ".join([*flags, *link]).encode()  # another library linked: another build
        build_key = hashlib.sha256(bytes(1).join([text, named, cc.encode()]))
        marker = directory / f"{stem}-{build_key.hexdigest()[:16]}.failed"
        if _marker_fresh(marker):
            raise KernelUnavailable(
                f"an earlier build failed ({marker.read_text().strip()}); delete {marker} to retry"
            )
        try:
            version = run_compiler([cc, "--version"])
            parts = [text, named, version.encode(), _cpu_key()]
            name = f"{stem}-{hashlib.sha256(bytes(1).join(parts)).hexdigest()[:16]}.so"
            if key is None:  # no key to verify a cached file with: this process's own build
                data = _build(directory, name, cc, source, flags, None, link)
            else:
                data = _verified_bytes(dir_fd, directory, name, key)
                if data is None:
                    _build(directory, name, cc, source, flags, key, link)
                    data = _verified_bytes(dir_fd, directory, name, key)
        except (KernelUnavailable, OSError) as err:
            _atomic_write(directory, marker.name, str(err).encode())
            raise KernelUnavailable(f"build failed: {err}") from None
        if data is None:
            raise KernelUnavailable(f"the freshly built {directory / name} does not verify")
        try:
            lib = _load_bytes(data, directory, name)
        except KernelUnavailable:
            _remove(directory, name)  # rebuilt by the next process, not kept forever
            raise
        missing = [s for s in symbols if not hasattr(lib, s)]
        problem = f"lacks {', '.join(missing)}" if missing else self_test(lib)
        if problem:
            _remove(directory, name)
            raise KernelUnavailable(f"{directory / name} {problem}; removed")
        return lib
    finally:
        os.close(dir_fd)
