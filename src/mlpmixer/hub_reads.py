"""A stall window and a size cap for every read the Hugging Face libraries make.

``datasets.load_dataset("hf:NAME")`` (a training run on ``hf:NAME``) reads the hub through
``huggingface_hub``'s shared HTTP client, whose default has no timeout: a server that never
answers, or sends a byte every few seconds, held the run forever with no output. Our own
downloads (`mlpmixer.download`) give up on less than `MIN_RATE_BYTES_S` over a stall window
(``$MLPMIXER_DOWNLOAD_STALL_S``, default 30 s) and refuse more than the size cap
(``$MLPMIXER_DOWNLOAD_MAX_BYTES``); this module gives the hub's reads the same:

* `install` hands ``huggingface_hub`` a client (its documented ``set_client_factory``) whose
  transport meters every exchange: the time spent waiting for the server (for the response's
  head or the next bytes of its body) and the bytes that came. A response larger than the cap
  ends its read with `DataError` (exit 2).
* `watched_call` runs a blocking call of the library (``load_dataset``) in a daemon thread
  and ends with the one-line `DownloadError` (exit 1) of a stalled download once the reads
  have waited a whole window for less than `MIN_RATE_BYTES_S` per second. Time the library
  spends on its own work (converting files, a consumer between reads) is not waiting, so a
  slow conversion is no stall; a stuck read cannot be interrupted from outside: its thread
  is a daemon, never keeping the process alive.

Xet-stored files are fetched by ``hf_xet``'s own client, outside this one: `mlpmixer.data.hf`
sets ``HF_HUB_DISABLE_XET`` (unless the user set it) so that they come through here too.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .download import MAX_BYTES_ENV, MIN_RATE_BYTES_S, max_download_bytes, stall_seconds, stalled
from .errors import DataError

T = TypeVar("T")
POLL_S = 0.1  # how often watched_call looks at the meter


class Meter:
    """Waiting time and bytes of the current stall window, over every read of the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = 0  # reads waiting for the server now
        self.since = 0.0  # when the current waiting spell began
        self.waited = 0.0  # seconds of waiting in this window, before the current spell
        self.bytes = 0  # bytes that came in this window
        self.error: BaseException | None = None  # a read refused (the size cap)

    def restart(self) -> None:
        with self.lock:
            self.waited, self.bytes, self.error = 0.0, 0, None
            self.since = time.monotonic()

    def begin_wait(self) -> None:
        with self.lock:
            if self.waiting == 0:
                self.since = time.monotonic()
            self.waiting += 1

    def end_wait(self, count: int) -> None:
        with self.lock:
            self.waiting -= 1
            self.bytes += count
            if self.waiting == 0:
                self.waited += time.monotonic() - self.since

    def stall(self, window: float) -> str | None:
        """What the reads did, if they waited ``window`` seconds for too few bytes; else None
        (and a window with enough bytes starts a new one)."""
        with self.lock:
            now = time.monotonic()
            waited = self.waited + (now - self.since if self.waiting else 0.0)
            if waited < window:
                return None
            if self.bytes < MIN_RATE_BYTES_S * window:
                return f"{self.bytes:,} bytes in {waited:.0f} s of waiting for the server"
            self.waited, self.bytes, self.since = 0.0, 0, now
            return None


METER = Meter()


def _timed(inner: Iterator[bytes], url: str, cap: int) -> Iterator[bytes]:
    """The chunks of a response body, each wait metered; `DataError` past ``cap`` bytes."""
    total = 0
    while True:
        METER.begin_wait()
        count = 0
        try:
            chunk = next(inner, None)
            count = len(chunk) if chunk is not None else 0
        finally:
            METER.end_wait(count)
        if chunk is None:
            return
        total += count
        if total > cap:
            error = DataError(
                f"{url}: the response is larger than the limit of {cap:,} bytes "
                f"(${MAX_BYTES_ENV} raises it)"
            )
            METER.error = error
            raise error
        yield chunk


def _transport_class(httpx: Any) -> type:
    """A transport of ``httpx`` (httpx or its fork httpx2, whichever huggingface_hub uses)
    that meters another one."""

    class WatchedStream(httpx.SyncByteStream):
        def __init__(self, inner: Any, url: str) -> None:
            self.inner, self.url = inner, url

        def __iter__(self) -> Iterator[bytes]:
            return _timed(iter(self.inner), self.url, max_download_bytes())

        def close(self) -> None:
            self.inner.close()

    class WatchedTransport(httpx.BaseTransport):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def handle_request(self, request: Any) -> Any:
            METER.begin_wait()  # until the response's head has come
            try:
                response = self.inner.handle_request(request)
            finally:
                METER.end_wait(0)
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=WatchedStream(response.stream, str(request.url)),
                extensions=response.extensions,
            )

        def close(self) -> None:
            self.inner.close()

    return WatchedTransport


_installed = threading.Lock()
_INSTALLED: list[bool] = []


def install() -> None:
    """Make ``huggingface_hub``'s shared client meter its reads (once per process; nothing
    to do without the package, whose client ``datasets`` reads the hub with)."""
    with _installed:
        if _INSTALLED:
            return
        try:
            from huggingface_hub import set_client_factory
            from huggingface_hub.utils import _http
        except ImportError:
            return

        default = _http.default_client_factory

        def watched_client() -> Any:
            client = default()  # huggingface_hub's own settings (hooks, redirects)
            httpx = importlib.import_module(type(client).__module__.partition(".")[0])
            watched = _transport_class(httpx)
            client._transport = watched(client._transport)
            # proxies ($HTTPS_PROXY...) are transports mounted per URL pattern: metered too
            client._mounts = {k: v if v is None else watched(v) for k, v in client._mounts.items()}
            return client

        set_client_factory(watched_client)
        _INSTALLED.append(True)


def watched_call(call: Callable[[], T], where: str, window: float | None = None) -> T:
    """``call()`` (which reads the hub through ``huggingface_hub``), ended with `DownloadError`
    (exit 1) naming ``where`` when its reads stall (see the module docstring), or with the
    `DataError` of a response over the size cap; its own error is raised unchanged."""
    install()
    window = stall_seconds() if window is None else window
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    METER.restart()
    thread = threading.Thread(target=run, name=f"hub reads: {where}", daemon=True)
    thread.start()
    while True:
        thread.join(POLL_S)
        if METER.error is not None:  # the library may have wrapped or swallowed it
            raise METER.error
        if not thread.is_alive():
            break
        detail = METER.stall(window)
        if detail is not None:
            raise stalled(where, detail)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
