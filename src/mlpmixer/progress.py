"""Progress of long work (training steps, bench phases, the trainings of a study, big loads)
as log records.

The library never prints: it logs an INFO record marked with ``extra=PROGRESS`` on its
``mlpmixer.*`` logger. The CLI's log handler shows such records as ``... `` lines on stderr
unless the command prints ``--json`` (or ``MLPMIXER_PROGRESS=0``; ``=1`` forces them); other
INFO records (notices) always. `Ticker` reports counted work (step, rate, ETA) at least
every ~10 seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

PROGRESS = {"progress": True}  # ``log.info(..., extra=PROGRESS)``
INTERVAL_S = 10.0  # the longest silence of a long command (a `Ticker` built without interval)


def is_progress(record: logging.LogRecord) -> bool:
    """Whether ``record`` reports progress (rather than a notice the user must see)."""
    return bool(getattr(record, "progress", False))


def plural(unit: str) -> str:
    """``step`` -> ``steps``, ``batch`` -> ``batches``."""
    return unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")


def duration(seconds: float) -> str:
    """``seconds`` as ``42s``, ``3m05s`` or ``2h07m``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"


class Ticker:
    """Progress of work with a known number of units (steps), as PROGRESS log lines with the
    count, the rate and the time left: at most one line per ``interval`` seconds from
    `advance`, and, while one unit takes longer than that, a heartbeat line from a
    background thread, so that a line appears at least every ``interval`` seconds.

    Use as a context manager (the heartbeat thread runs inside it)::

        with Ticker(log, "permutation study", total=600) as ticker:
            for ...:
                ...one step...
                ticker.advance(detail="mixer on original, epoch 3/30")
    """

    def __init__(
        self, logger: logging.Logger, what: str, total: int | None, unit: str = "step",
        interval: float | None = None, done: int = 0,
    ) -> None:  # fmt: skip
        # total None: work of unknown length (a stream), reported without share and ETA
        self.logger, self.what, self.unit = logger, what, unit
        self.total = None if total is None else max(total, 1)
        self.interval = INTERVAL_S if interval is None else interval
        self.done, self.start_done = done, done
        self.detail = ""
        self.start = self.last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        self._thread = threading.Thread(target=self._beat, name="mlpmixer-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def advance(self, units: int = 1, detail: str | None = None, force: bool = False) -> None:
        """``units`` more done; a line if ``interval`` has passed since the last (or ``force``)."""
        with self._lock:
            self.done += units
            if detail is not None:
                self.detail = detail
            if force or time.monotonic() - self.last >= self.interval:
                self._emit("")

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, max(0.05, self.interval / 4))):
            with self._lock:
                if time.monotonic() - self.last >= self.interval:
                    self._emit(f", working on {self.unit} {self.done + 1}")

    def line(self, suffix: str = "") -> str:
        elapsed = time.monotonic() - self.start
        new = self.done - self.start_done
        rate = new / elapsed if elapsed > 0 else 0.0
        known = self.total is not None
        left = (self.total - self.done) / rate if known and rate > 0 else None
        eta = f", ETA {duration(left)}" if left is not None else ""
        detail = f" ({self.detail})" if self.detail else ""
        units = plural(self.unit)
        speed = f"{rate:.2f} {units}/s" if rate >= 0.1 else f"{60 * rate:.2f} {units}/min"
        count = f"{self.done}/{self.total} ({100 * self.done / self.total:.0f}%)" if known else ""
        return (
            f"{self.what}: {self.unit} {count or self.done}{detail}, {speed}, elapsed "
            f"{duration(elapsed)}{eta}{suffix}"
        )

    def _emit(self, suffix: str) -> None:
        self.last = time.monotonic()
        self.logger.info("%s", self.line(suffix), extra=PROGRESS)


def counted(
    items: Iterable[T], logger: logging.Logger, what: str, unit: str = "batch",
    total: int | None = None,
) -> Iterator[T]:  # fmt: skip
    """``items``, reporting progress through a `Ticker` (a line at least every ~10 s) while
    they are consumed; ``total`` defaults to ``len(items)`` when they have one."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:  # a generator or a stream: counted without a total
            total = None
    with Ticker(logger, what, total, unit) as ticker:
        for item in items:
            yield item
            ticker.advance()


class _LastProgress(logging.Handler):
    """Remembers the latest progress record of the ``mlpmixer`` logger and when it came."""

    def __init__(self) -> None:
        super().__init__()
        self.message, self.time = "", time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        if is_progress(record):
            self.time = time.monotonic()
            if not getattr(record, "heartbeat", False):  # a beat repeats the phase, is none
                self.message = record.getMessage()


_BEAT = {**PROGRESS, "heartbeat": True}


class Heartbeat:
    """For work of unknown length made of logged phases (a benchmark): while no progress
    line has come for ``interval`` seconds, log ``what: still <last phase> (elapsed ...)``."""

    def __init__(self, logger: logging.Logger, what: str, interval: float = 10.0) -> None:
        self.logger, self.what, self.interval = logger, what, interval
        self.start = time.monotonic()
        self._last = _LastProgress()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlpmixer-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        logging.getLogger("mlpmixer").addHandler(self._last)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        logging.getLogger("mlpmixer").removeHandler(self._last)

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 4)):
            if time.monotonic() - self._last.time >= self.interval:
                doing = self._last.message.split(" (elapsed")[0] or "working"
                elapsed = duration(time.monotonic() - self.start)
                self.logger.info("%s: still %s (elapsed %s)", self.what, doing, elapsed,
                                 extra=_BEAT)  # fmt: skip
