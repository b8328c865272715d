"""A stall window for a stream that another library reads from the network.

Our own HTTP reads (`mlpmixer.download`) bound each wait and measure the rate. A stream read
inside another library (Hugging Face ``datasets`` with ``streaming=True``) is out of their
reach: a server sending a byte every few seconds passes every per-read timeout, and a
reader stuck inside the library hangs the run with no output. `watch_stalls` iterates such
a source in a daemon thread and hands its items over through a small queue; the consumer
waits at most the stall window (``$MLPMIXER_DOWNLOAD_STALL_S``, default 30 s) for each item,
then ends with the one-line `DownloadError` (exit 1) of a stalled download.

A thread and a queue, not a signal alarm: it works in any thread and in DataLoader worker
processes. A source that is stuck cannot be interrupted from outside; its thread is a daemon,
so it never keeps the process alive, and it ends as soon as the source returns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from .download import stall_seconds, stalled

T = TypeVar("T")

READ_AHEAD = 8  # items the source may run ahead of the consumer: hides its latency, bounds memory
POLL_S = 0.1  # how often a source blocked on a full queue checks that the consumer still reads


class _End:
    """What the source thread puts last: ``error`` is None at the source's end, else what it
    raised (passed to the consumer unchanged)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _put(out: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer stopped meanwhile; whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _produce(items: Iterable[object], out: queue.Queue, stop: threading.Event) -> None:
    """The source thread: every item of ``items``, then an `_End`; stops when told to."""
    try:
        source = iter(items)  # inside the thread: opening a stream may itself stall
        try:
            for item in source:
                if not _put(out, item, stop):
                    return  # the consumer is gone (finished early, or failed)
        finally:
            close = getattr(source, "close", None)
            if close is not None:  # a generator's own cleanup runs here, in its thread
                close()
    except BaseException as err:  # handed to the consumer, which raises it unchanged
        _put(out, _End(err), stop)
    else:
        _put(out, _End(), stop)


def watch_stalls(items: Iterable[T], where: str, window: float | None = None) -> Iterator[T]:
    """The items of ``items`` in order; `DownloadError` (exit 1) naming ``where`` if none
    arrives within ``window`` seconds (default: `mlpmixer.download.stall_seconds`).

    ``items`` is iterated in a daemon thread that starts at the first ``next()`` (so in the
    process that reads, e.g. a DataLoader worker) and ends with the source, with its error,
    or within `POLL_S` after the consumer stops reading; an error of the source is raised
    here unchanged (the same object).
    """
    window = stall_seconds() if window is None else window
    out: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()
    thread = threading.Thread(
        target=_produce, args=(items, out, stop), name=f"stall watch: {where}", daemon=True
    )
    thread.start()
    count = 0
    try:
        while True:
            try:
                item = out.get(timeout=window)
            except queue.Empty:
                detail = f"no record in the last {window:g} s, {count:,} in all"
                raise stalled(where, detail) from None
            if isinstance(item, _End):
                thread.join()  # it put its last item: it is returning
                if item.error is not None:
                    raise item.error
                return
            count += 1
            yield item
    finally:
        stop.set()  # a source thread still running stops at its next item
