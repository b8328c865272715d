"""Downloading data files with a checksum, and extracting tar archives safely.

A download goes to a temporary file next to the target and is renamed only once its MD5
matches the published one (MD5 is what the MNIST and CIFAR authors publish; it guards
against truncation and corruption, not against an attacker). Offline, the `DownloadError`
says which file to put where.

`safe_extract` extracts with tarfile's ``data`` filter (PEP 706: nothing outside the target,
no devices, no setuid or group/other-write bits, no owners) and, stricter than that filter,
refuses any member that is not a regular file or folder (a data set archive has no reason to
hold a link, even one pointing inside) and any absolute name (the filter would strip the
slash and extract it). It extracts into a temporary folder that is renamed into place when
complete, so an interrupted or refused extraction leaves nothing half-done.
"""

from __future__ import annotations

import hashlib
import platform
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..download import download_file
from ..errors import DataError


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: Path, expected: str) -> None:
    actual = md5_of(path)
    if actual != expected:
        raise DataError(
            f"{path}: MD5 {actual} does not match the published {expected}; the file is "
            "corrupt or a different version: delete it and download it again"
        )


def fetch(url: str, target: Path, md5: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` unless present; verify its MD5 either way."""
    if target.is_file():
        check_md5(target, md5)
        return target
    hint = (
        f"Offline? Download {url} on a connected machine and put it at {target} "
        "(or pass --dataset DIR, a directory holding it)"
    )
    return download_file(url, target, hint, verify=lambda tmp: check_md5(tmp, md5), timeout=timeout)


def _strict_data_filter(source: Path) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """tarfile's ``data`` filter, after the checks it does not make; every refusal is a
    `DataError` naming ``source`` and the member."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        if not (member.isfile() or member.isdir()):
            raise DataError(
                f"{source}: archive member {member.name!r} is a link or special file; "
                "not extracting"
            )
        if member.name.startswith(("/", "\\")):
            raise DataError(f"{source}: unsafe path {member.name!r} in archive; not extracting")
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as err:  # its message names our temporary folder: not shown
            raise DataError(
                f"{source}: unsafe path {member.name!r} in archive; not extracting"
            ) from err

    return check


def safe_extract(archive_path: Path, target: Path) -> Path:
    """Extract a .tar(.gz) into ``target`` (regular files and folders only); returns ``target``."""
    if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4 (PEP 706)
        raise DataError(
            f"{archive_path}: extracting safely needs tarfile's extraction filters (Python "
            f">= 3.10.12 or 3.11.4; this is {platform.python_version()}): update Python, or "
            f"extract the archive into {target} yourself"
        )
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        with (
            tarfile.open(archive_path) as archive,
            tempfile.TemporaryDirectory(prefix=".extract-", dir=target) as tmp,
        ):
            archive.extractall(tmp, filter=_strict_data_filter(archive_path))
            for top in Path(tmp).iterdir():  # move complete top-level entries into place
                final = root / top.name
                if not final.exists():
                    top.rename(final)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive_path}: not a readable tar archive ({err})") from err
    return target
