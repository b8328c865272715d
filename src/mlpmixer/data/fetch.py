"""Downloading data files with a checksum, and extracting tar archives safely.

A download goes to a temporary file next to the target and is renamed only once its MD5
matches the published one (MD5 is what the MNIST and CIFAR authors publish; it guards
against truncation and corruption, not against an attacker). Offline, the `DownloadError`
says which file to put where.

`safe_extract` refuses any archive member that could write outside the target directory
(absolute paths, ``..``, links, devices), and extracts into a temporary folder that is
renamed into place when complete, so an interrupted extraction leaves nothing half-done.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

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


def _checked_members(archive: tarfile.TarFile, source: Path) -> list[tarfile.TarInfo]:
    members = []
    for member in archive.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")):
            raise DataError(f"{source}: unsafe path {member.name!r} in archive; not extracting")
        if not (member.isfile() or member.isdir()):
            raise DataError(
                f"{source}: archive member {member.name!r} is a link or special file; "
                "not extracting"
            )
        members.append(member)
    return members


def safe_extract(archive_path: Path, target: Path) -> Path:
    """Extract a .tar(.gz) into ``target`` (regular files and folders only); returns ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        with tarfile.open(archive_path) as archive:
            members = _checked_members(archive, archive_path)
            with tempfile.TemporaryDirectory(prefix=".extract-", dir=target) as tmp:
                staging = Path(tmp).resolve()
                for member in members:
                    dest = (staging / member.name).resolve()
                    if not dest.is_relative_to(staging):
                        raise DataError(f"{archive_path}: unsafe path {member.name!r}")
                    if member.isdir():
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.extractfile(member) as src, open(dest, "wb") as out:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, out, 1 << 20)
                for top in staging.iterdir():  # move complete top-level entries into place
                    final = root / top.name
                    if not final.exists():
                        top.rename(final)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive_path}: not a readable tar archive ({err})") from err
    return target
