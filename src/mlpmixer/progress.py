"""Progress of long work (training steps, bench phases, the trainings of a study, big loads)
as log records.

The library never prints: it logs an INFO record marked with ``extra=PROGRESS`` on its
``mlpmixer.*`` logger. `StderrLines`, the CLI's log handler, shows such records as ``... ``
lines on stderr unless the command prints ``--json`` (or ``MLPMIXER_PROGRESS=0``; ``=1``
forces them); other INFO records (notices) always. From Python, `shown_on_stderr` puts the
same handler in place for one call (``mlpmixer.train(...)``) when the program has set up no
logging of its own, so a script or notebook sees what the CLI shows. `Ticker` reports
counted work (step, rate, ETA) at least every ~10 seconds.

Where a person watches (a terminal, a notebook), training draws one `Bar` instead: rich's
progress display, the one drawing library the project uses (its tables are rich's too).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

PROGRESS = {"progress": True}  # ``log.info(..., extra=PROGRESS)``
INTERVAL_S = 10.0  # the longest silence of a long command (a `Ticker` built without interval)


def is_progress(record: logging.LogRecord) -> bool:
    """Whether ``record`` reports progress (rather than a notice the user must see)."""
    return bool(getattr(record, "progress", False))


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters escaped (``\\x1b``...): class names and file names
    come from files, and an ANSI escape in one would drive the terminal. ``keep_newlines``:
    a message's own line breaks stay."""
    if text.isprintable():
        return text
    kept = "\n" if keep_newlines else ""
    return "".join(c if c.isprintable() or c in kept else ascii(c)[1:-1] for c in text)


class StderrLines(logging.Handler):
    """The library's log records as lines on stderr: warnings as ``warning: ...``, notices plain,
    progress of long work (records marked `mlpmixer.progress.PROGRESS`) as ``... `` lines when
    ``show_progress`` is set.

    ``sys.stderr`` is looked up for every record: click's test runner swaps it per command.
    """

    show_progress = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if is_progress(record):
                if not self.show_progress:
                    return
                prefix = "... "
            else:
                prefix = "warning: " if record.levelno >= logging.WARNING else ""
            sys.stderr.write(f"{prefix}{printable(record.getMessage())}\n")  # one line each
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def shown_on_stderr(enabled: bool = True) -> Iterator[None]:
    """Within the block, the library's notices and progress lines go to stderr through
    `StderrLines` (as in the CLI) when ``enabled`` and no handler would otherwise receive
    them (a script or notebook that configured no logging: Python would drop INFO records).
    A program with logging of its own gets the records there instead, as configured."""
    logger = logging.getLogger("mlpmixer")
    if not enabled or logger.hasHandlers():
        yield
        return
    handler = StderrLines()
    handler.show_progress = True
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (its output is a notebook cell, not a tty)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def notebook_widgets() -> bool:
    """Whether a `Bar` can be drawn in a notebook: rich draws it in an ipywidgets widget, and
    without that package shows only a warning (a notebook gets progress lines instead)."""
    return "ipywidgets" in sys.modules or importlib.util.find_spec("ipywidgets") is not None


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


class Bar:
    """One bar for work of ``total`` units, redrawn in place by rich (on a terminal; in a
    Jupyter notebook, rich's widget, or text without ipywidgets): a description, the bar,
    done/total, the rate, elapsed and remaining time, and a ``key=value`` postfix. Lines
    given to `write` appear above it, as do stderr writes while it is shown; a stream that
    is no terminal gets the final state once, at `close`."""

    def __init__(
        self, total: int, stream: TextIO, done: int = 0, unit: str = "step",
        notebook: bool = False,
    ) -> None:  # fmt: skip
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column
        from rich.text import Text

        class Postfix(ProgressColumn):
            """The ``key=value`` fields, one line: on a narrow terminal they are cut ("…"),
            never the counts and times (rich shares the cut among all columns otherwise)."""

            def render(self, task: Any) -> Text:
                return Text(task.fields["postfix"], no_wrap=True, overflow="ellipsis")

        def kept() -> Column:
            return Column(no_wrap=True)

        console = Console(file=stream, force_jupyter=notebook, highlight=False, emoji=False)
        self._progress = Progress(
            TextColumn("{task.description}", markup=False, table_column=kept()),
            BarColumn(bar_width=20), MofNCompleteColumn(table_column=kept()),
            TextColumn("{task.fields[rate]}", markup=False, table_column=kept()),
            TimeElapsedColumn(table_column=kept()), TimeRemainingColumn(table_column=kept()),
            Postfix(), console=console, redirect_stdout=False,  # stdout carries results (--json)
        )  # fmt: skip
        self._units = plural(unit)
        self._task = self._progress.add_task("", total=total, completed=done, rate="", postfix="")
        self._progress.start()

    def describe(self, text: str) -> None:
        self._progress.update(self._task, description=text)

    def set_postfix(self, values: dict[str, Any]) -> None:
        """``values`` shown after the bar as ``key=value, ...`` (loss, lr, top-1)."""
        postfix = ", ".join(f"{key}={value}" for key, value in values.items())
        self._progress.update(self._task, postfix=postfix)

    def advance(self, units: int = 1) -> None:
        self._progress.advance(self._task, units)
        speed = self._progress.tasks[self._task].speed  # over the last 30 s, None at first
        if speed:
            self._progress.update(self._task, rate=f"{speed:.2f} {self._units}/s")

    def write(self, text: str) -> None:
        """``text`` as one line above the bar, printed as it is (no markup)."""
        self._progress.console.print(printable(text), markup=False, highlight=False)

    def close(self) -> None:
        self._progress.stop()
