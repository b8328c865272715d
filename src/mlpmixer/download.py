"""Fetching checkpoints: Hugging Face hub repositories and plain URLs, cached locally.

Offline, or when a server refuses, these raise `DownloadError` with a message that says what
to download and where to put it; nothing half-downloaded is ever left in the cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import CheckpointNotFoundError, DownloadError
from .fileio import atomic_path
from .layout import CONFIG_JSON, SAFETENSORS_WEIGHTS, TORCH_WEIGHTS

HUB_PREFIX = "hf-hub:"
GCS_PREFIX = "gs://"  # Google Cloud Storage, as the official READMEs name the .npz buckets
GCS_HTTPS = "https://storage.googleapis.com/"
WEIGHT_FILES = (SAFETENSORS_WEIGHTS, TORCH_WEIGHTS, "open_clip_pytorch_model.bin")


def is_hub_id(text: str) -> bool:
    """Whether ``text`` names a Hugging Face hub repository: ``hf-hub:org/name``, or ``org/name``
    (exactly one slash, not a relative or absolute path). Callers try local paths first."""
    return text.startswith(HUB_PREFIX) or (text.count("/") == 1 and not text.startswith((".", "/")))


def public_url(text: str) -> str | None:
    """The https URL of ``text`` if it is one (``http(s)://``) or a public Cloud Storage object
    (``gs://mixer_models/gsam/...`` -> ``https://storage.googleapis.com/mixer_models/gsam/...``,
    so any file of an official bucket can be named as its README names it); else None."""
    if text.startswith(("http://", "https://")):
        return text
    if text.startswith(GCS_PREFIX) and len(text) > len(GCS_PREFIX):
        return GCS_HTTPS + text[len(GCS_PREFIX) :]
    return None


def cache_dir() -> Path:
    """``$MLPMIXER_CACHE``, else ``$XDG_CACHE_HOME/mlpmixer``, else ``~/.cache/mlpmixer``."""
    if "MLPMIXER_CACHE" in os.environ:
        return Path(os.environ["MLPMIXER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlpmixer"


def download_file(
    url: str,
    target: Path,
    hint: str,
    verify: Callable[[Path], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``target`` atomically; ``verify(tmp)`` may refuse it before the rename.

    Failures raise `DownloadError` ending with ``hint`` (what to download, and where to put it).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            if verify is not None:
                verify(tmp)
    except urllib.error.HTTPError as err:
        raise DownloadError(
            f"cannot download {url}: the server answered {err.code} {err.reason}. {hint}"
        ) from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DownloadError(
            f"cannot download {url} ({getattr(err, 'reason', err)}). {hint}"
        ) from err
    return target


def download_url(url: str, timeout: float = 60.0) -> Path:
    """Download ``url`` into the cache once (atomically); returns the cached file."""
    target = cache_dir() / "urls" / url.split("://", 1)[-1].replace("/", "_")
    if target.is_file():
        return target
    hint = (
        "Offline? Download it on a connected machine and pass the file's path instead, "
        f"or put it at {target}"
    )
    return download_file(url, target, hint, timeout=timeout)


def _hub_errors() -> tuple[type[Exception], ...]:
    """(missing file on the server, offline/not cached, repo or revision missing) error types."""
    from huggingface_hub import errors

    missing_remote = getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)
    not_found = (errors.RepositoryNotFoundError, errors.RevisionNotFoundError)
    return missing_remote, errors.LocalEntryNotFoundError, not_found


PROBE_TIMEOUT_S = 2.0


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub's endpoint opens within ``timeout`` seconds."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urllib.parse.urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:  # refused, unresolvable host, timeout
        return False
    return True


def download_hub_repo(repo_id: str, **hub_options: Any) -> Path:
    """config.json (if any) and the weights file of a hub repository; returns the local folder.

    An unreachable hub reads the local cache only: huggingface_hub would otherwise retry for
    ~25 s and log each try before giving up.
    """
    from huggingface_hub import hf_hub_download

    missing_remote, offline, not_found = _hub_errors()
    repo_id = repo_id.removeprefix(HUB_PREFIX)
    if not hub_options.get("local_files_only") and not hub_reachable():
        hub_options = {**hub_options, "local_files_only": True}
    try:
        folder = None
        for name in WEIGHT_FILES:
            try:
                folder = Path(hf_hub_download(repo_id, name, **hub_options)).parent
                break
            except offline:
                raise  # before the next clause: offline errors subclass "entry not found"
            except missing_remote:
                continue
        if folder is None:
            raise CheckpointNotFoundError(f"hub repository {repo_id!r} has none of {WEIGHT_FILES}")
        with contextlib.suppress(missing_remote):
            hf_hub_download(repo_id, CONFIG_JSON, **hub_options)
    except not_found as err:
        raise CheckpointNotFoundError(
            f"{repo_id!r} is neither a local path nor a Hugging Face hub repository"
        ) from err
    except offline as err:
        raise DownloadError(
            f"cannot download {repo_id!r} from the Hugging Face hub: offline and not in the local "
            "cache. Connect to the network, or download the repository elsewhere and pass its "
            "local folder"
        ) from err
    except CheckpointNotFoundError:
        raise
    except OSError as err:
        raise DownloadError(
            f"cannot download {repo_id!r} from the Hugging Face hub: {err}"
        ) from err
    return folder
