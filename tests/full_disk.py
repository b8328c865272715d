"""A real, small file system to fill up: a 1 MiB tmpfs mounted for one test, where allowed.

Mounting needs root (or a user namespace); elsewhere the test is skipped, and the same path
is covered by injecting ENOSPC at the write.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str = "1m") -> Iterator[Path]:
    """``directory`` as a fresh tmpfs of ``size``; skips the test if it cannot be mounted."""
    directory.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        # lazily: a file still open (a failed test's) must not leave the mount behind
        subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)
