"""Fetching checkpoints: Hugging Face hub repositories and plain URLs, cached locally.

Offline, or when a server refuses, these raise `DownloadError` with a message that says what
to download and where to put it; nothing half-downloaded is ever left in the cache.

A download goes to a temporary file and is kept only if it is complete and plausible: as many
bytes as the server declared (a short read is refused), not a web page (an HTML error page
sent with status 200), within a size cap, and passing the caller's check (a checksum where one
is published). A server that stalls or trickles (less than `MIN_RATE_BYTES_S` over any
``$MLPMIXER_DOWNLOAD_STALL_S`` seconds, default 30) is given up on. The URL cache is keyed
by the whole URL, so ``http://`` and ``https://`` (or ``a_b`` and ``a/b``) never share a file.

`read_url` and `url_size` read other remote data (shard indexes and shards) the same way, in
memory: one implementation of the stall window, size cap and one-line errors for every
remote read. Streams that another library reads (Hugging Face ``datasets``) get the same
window and error from `mlpmixer.stream_watchdog`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import io
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .envvars import positive_number
from .errors import CheckpointError, CheckpointNotFoundError, DownloadError
from .fileio import atomic_path
from .layout import CONFIG_JSON, SAFETENSORS_WEIGHTS, TORCH_WEIGHTS
from .progress import PROGRESS

log = logging.getLogger(__name__)

HUB_PREFIX = "hf-hub:"
GCS_PREFIX = "gs://"  # Google Cloud Storage, as the official READMEs name the .npz buckets
GCS_HTTPS = "https://storage.googleapis.com/"
WEIGHT_FILES = (SAFETENSORS_WEIGHTS, TORCH_WEIGHTS, "open_clip_pytorch_model.bin")


# Our own rule for a repository id, checked before huggingface_hub sees it (its validator
# raised HFValidationError tracebacks, and a path such as "../../x" must never reach a URL):
# [ORG/]NAME, each 1-96 of letters, digits, "-", "_", "." not starting or ending with "-"/"."
# and without "--" or "..".
_HUB_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")


def _valid_repo_id(repo_id: str, bare: bool = False) -> bool:
    """ORG/NAME by our rule (also a bare NAME, as the hub allows, when ``bare``)."""
    parts = repo_id.split("/")
    return (
        (len(parts) == 2 or (bare and len(parts) == 1))
        and all(_HUB_PART.fullmatch(part) for part in parts)
        and "--" not in repo_id
        and ".." not in repo_id
    )


def is_hub_id(text: str) -> bool:
    """Whether ``text`` names a Hugging Face hub repository: ``hf-hub:ORG/NAME`` (any text
    after the prefix is meant as one; `hub_repo_id` refuses a malformed one), or a valid
    ``ORG/NAME`` (one slash, our character rule, so not a path). Callers try local paths first."""
    return text.startswith(HUB_PREFIX) or _valid_repo_id(text)


def hub_repo_id(text: str) -> str:
    """The repository id of ``text`` (``hf-hub:`` removed), checked by our rule; else
    `CheckpointError` (exit 2) naming it."""
    repo_id = text.removeprefix(HUB_PREFIX)
    if not _valid_repo_id(repo_id, bare=text.startswith(HUB_PREFIX)):
        raise CheckpointError(
            f"{text!r} is not a valid Hugging Face hub id: expected hf-hub:ORG/NAME, each part "
            "1-96 letters, digits, '-', '_' or '.' (no '..' or '--', not starting with '-' or '.')"
        )
    return repo_id


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


STALL_ENV = "MLPMIXER_DOWNLOAD_STALL_S"
DEFAULT_STALL_S = 30.0
MIN_RATE_BYTES_S = 1024  # slower than this over a whole stall window is a stalled download
MAX_BYTES_ENV = "MLPMIXER_DOWNLOAD_MAX_BYTES"
DEFAULT_MAX_BYTES = 16 * 2**30  # no checkpoint or data file we read is near this (H/14: 1.7 GB)
CHUNK = 1 << 20
PROGRESS_EVERY_S = 5.0  # a progress line this often (stderr; see mlpmixer.progress)
HTML_START = re.compile(rb"\s*<(!doctype html|html|head|body)", re.IGNORECASE)


def stall_seconds() -> float:
    """``$MLPMIXER_DOWNLOAD_STALL_S`` (default 30): the window in which a download must progress."""
    return positive_number(STALL_ENV, DEFAULT_STALL_S)


def stalled(where: str, detail: str) -> DownloadError:
    """The one-line error (exit 1) of every remote read given up on for stalling: a download
    here, a record stream in `mlpmixer.stream_watchdog`. ``detail`` says what arrived."""
    return DownloadError(
        f"{where}: the download stalled ({detail}); try again later (${STALL_ENV} sets the window)"
    )


def max_download_bytes() -> int:
    """``$MLPMIXER_DOWNLOAD_MAX_BYTES`` (default 16 GiB): the cap when no size is declared."""
    return int(positive_number(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))


def _raise_hint(note: str | None) -> str:
    """Why the cap is what it is: the caller's ``note``, else the variable that raises it."""
    return note or f"${MAX_BYTES_ENV} raises the limit"


def _declared_size(
    response: Any, url: str, limit: int | None = None, note: str | None = None
) -> int | None:
    """The Content-Length, checked against the cap; None if the server sent none."""
    headers = getattr(response, "headers", None)  # a non-HTTP response has none
    text = headers.get("Content-Length") if headers is not None else None
    if text is None or not text.strip().isdigit():
        return None
    size, cap = int(text), limit or max_download_bytes()
    if size > cap:
        raise DownloadError(
            f"{url}: the server declares {size:,} bytes, more than the limit of {cap:,} "
            f"({_raise_hint(note)})"
        )
    return size


def _refuse_web_page(response: Any, first: bytes, url: str) -> None:
    """An HTML body (a login or error page sent with status 200) is never a checkpoint."""
    headers = getattr(response, "headers", None)
    kind = headers.get_content_type() if headers is not None else ""
    if kind in ("text/html", "application/xhtml+xml") or HTML_START.match(first[:512]):
        raise DownloadError(
            f"{url}: the server sent a web page ({kind or 'HTML'}), not the file; "
            "check the URL (a login, error or redirect page?)"
        )


class _Progress:
    """Logs "downloading URL: N of M MB" every few seconds, and stops stalled downloads."""

    def __init__(self, url: str, total: int | None) -> None:
        self.url, self.total, self.done = url, total, 0
        self.stall = stall_seconds()
        self.window_start = self.last_log = time.monotonic()
        self.window_bytes = 0

    def add(self, count: int) -> None:
        self.done += count
        self.window_bytes += count
        now = time.monotonic()
        if now - self.window_start >= self.stall:
            if self.window_bytes < MIN_RATE_BYTES_S * self.stall:
                raise stalled(
                    self.url,
                    f"{self.window_bytes:,} bytes in the last {now - self.window_start:.0f} s, "
                    f"{self.done:,} in all",
                )
            self.window_start, self.window_bytes = now, 0
        if now - self.last_log >= PROGRESS_EVERY_S:
            self.last_log = now
            of = f" of {self.total / 1e6:,.1f}" if self.total else ""
            log.info("downloading %s: %.1f%s MB", self.url, self.done / 1e6, of, extra=PROGRESS)


def _copy_checked(
    response: Any, out: Any, url: str, limit: int | None = None, note: str | None = None
) -> int:
    """Copy the body to ``out``: refuse web pages, stalls, more than declared or the cap
    (``limit`` if given, e.g. a shard's recorded size, said with ``note``; else
    `max_download_bytes`), and less than declared. Returns the byte count."""
    declared = _declared_size(response, url, limit, note)
    cap = declared if declared is not None else (limit or max_download_bytes())
    progress = _Progress(url, declared)
    first = True
    # read1: returns what arrived, so a trickle is seen (fsspec files have only read)
    read = getattr(response, "read1", response.read)
    while chunk := read(CHUNK):
        if first:
            _refuse_web_page(response, chunk, url)
            first = False
        if progress.done + len(chunk) > cap:
            raise DownloadError(
                f"{url}: the server sent more than "
                + (f"the {cap:,} bytes it declared" if declared is not None else f"{cap:,} bytes")
                + (f" ({_raise_hint(note)})" if declared is None else "")
            )
        out.write(chunk)
        progress.add(len(chunk))
    if declared is not None and progress.done != declared:
        raise DownloadError(
            f"{url}: the connection closed after {progress.done:,} of the {declared:,} bytes "
            "the server declared (a short read); nothing was kept, try again"
        )
    return progress.done


def download_file(
    url: str,
    target: Path,
    hint: str,
    verify: Callable[[Path], None] | None = None,
    timeout: float | None = None,
) -> Path:
    """Download ``url`` to ``target`` atomically; ``verify(tmp)`` may refuse it before the rename.

    ``timeout`` (default: the stall window) bounds each wait for the server. Failures raise
    `DownloadError` ending with ``hint`` (what to download, and where to put it); the
    temporary file is removed, so a failed download is never kept.
    """
    timeout = stall_seconds() if timeout is None else timeout
    with (
        _download_errors(url, hint),
        urllib.request.urlopen(url, timeout=timeout) as response,
        atomic_path(target) as tmp,
    ):
        with open(tmp, "wb") as out:
            _copy_checked(response, out, url)
        if verify is not None:
            verify(tmp)
    return target


@contextlib.contextmanager
def _download_errors(url: str, hint: str, what: str = "download") -> Iterator[None]:
    """Turn every failure of a remote read into a one-line `DownloadError` (exit 1) ending
    with ``hint`` ("cannot {what} URL ..."); a full disk stays the `OSError` it is; a 404 is
    `RemoteNotFoundError`."""
    try:
        yield
    except DownloadError as err:
        raise DownloadError(f"{err} {hint}".rstrip()) from err
    except urllib.error.HTTPError as err:
        kind = RemoteNotFoundError if err.code == 404 else DownloadError
        raise kind(
            f"cannot {what} {url}: the server answered {err.code} {err.reason}. {hint}".rstrip()
        ) from err
    except (urllib.error.URLError, TimeoutError, http.client.HTTPException, OSError) as err:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        reason = getattr(err, "reason", None) or err or type(err).__name__
        if isinstance(reason, TimeoutError) or isinstance(err, TimeoutError):
            reason = f"no answer within {stall_seconds():g} s; ${STALL_ENV} sets the window"
        raise DownloadError(f"cannot {what} {url} ({reason}). {hint}".rstrip()) from err


class RemoteNotFoundError(DownloadError):
    """The server answered 404 (callers that can say "does not exist" catch it)."""


def is_http(location: str) -> bool:
    """Whether ``location`` is read with this module's HTTP reader (``http://``/``https://``)."""
    return location.startswith(("http://", "https://"))


def read_url(
    url: str, limit: int | None = None, what: str = "download", note: str | None = None
) -> bytes:
    """The body of an ``http(s)://`` URL in memory, read as `download_file` reads: each wait
    bounded by the stall window, a stalled or trickling server given up on, at most ``limit``
    bytes (default `max_download_bytes`; ``note`` says why in the error), a short read
    refused. `DownloadError` (exit 1)."""
    out = io.BytesIO()
    with (
        _download_errors(url, "", what),
        urllib.request.urlopen(url, timeout=stall_seconds()) as response,
    ):
        _copy_checked(response, out, url, limit, note)
    return out.getvalue()


def url_size(url: str, what: str = "download") -> int | None:
    """The size an ``http(s)://`` server declares for ``url`` (a HEAD request, bounded by the
    stall window); None if it declares none. `DownloadError` (exit 1) if it fails."""
    request = urllib.request.Request(url, method="HEAD")
    with (
        _download_errors(url, "", what),
        urllib.request.urlopen(request, timeout=stall_seconds()) as response,
    ):
        text = response.headers.get("Content-Length")
    return int(text) if text is not None and text.strip().isdigit() else None


def url_cache_path(url: str) -> Path:
    """Where the cache keeps ``url``: ``urls/<sha256 of the whole URL, 16 hex>-<file name>``.

    The digest keys by the exact URL (scheme, host, path, query); the file name keeps the
    suffix that tells the checkpoint format, and makes the folder readable.
    """
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[-100:] or "download"
    return cache_dir() / "urls" / f"{digest}-{name}"


def download_url(url: str, timeout: float | None = None) -> Path:
    """Download ``url`` into the cache once (atomically); returns the cached file."""
    target = url_cache_path(url)
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

    repo_id = hub_repo_id(repo_id)  # before huggingface_hub sees it
    missing_remote, offline, not_found = _hub_errors()
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
