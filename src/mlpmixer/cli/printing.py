"""What the commands print, and where: results on stdout (``console``, ``print_json``),
messages on stderr (``err_console``), and the library's log records as stderr lines.

The library never prints; it logs (`mlpmixer.progress`). The CLI installs one
`StderrLines` handler and decides per command whether progress lines show.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import click
from rich.console import Console

from ..progress import StderrLines, printable


class _SafeConsole(Console):
    """A console that escapes control characters in the strings it prints, newlines included:
    messages quote file names, class names and values from files and the command line, and
    an ANSI or OSC sequence in one would drive the terminal; a newline in ``--out`` would
    split a message into lines that look like two. Each string printed is one line; text of
    several lines is printed line by line."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        safe = [printable(o) if isinstance(o, str) else o for o in objects]
        super().print(*safe, **kwargs)


# Messages, paths and class names are printed as plain text: with rich's markup on, any
# "[...]" in them was swallowed ("mlpmixer[hf]" lost "[hf]") or crashed the printer.
console = _SafeConsole(markup=False, highlight=False, emoji=False)
err_console = _SafeConsole(stderr=True, markup=False, highlight=False, emoji=False)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (what ``--json`` prints)."""
    click.echo(json.dumps(data, indent=2))


def progress_wanted(as_json: bool = False) -> bool:
    """Progress lines on stderr unless the command prints ``--json`` (a program reads it, and
    may read stderr too), whether or not stderr is a terminal: a redirected run must not be
    silent for minutes. MLPMIXER_PROGRESS=1 forces them, =0 silences them."""
    setting = os.environ.get("MLPMIXER_PROGRESS", "auto")
    return setting == "1" or (setting == "auto" and not as_json)


def _library_handler() -> StderrLines:
    logger = logging.getLogger("mlpmixer")
    handler = next((h for h in logger.handlers if isinstance(h, StderrLines)), None)
    if handler is None:
        handler = StderrLines()
        logger.addHandler(handler)
    return handler


def show_library_log(as_json: bool = False) -> None:
    """Show what the library logs (INFO and up on the ``mlpmixer`` logger) on stderr: one
    handler, installed once; whether progress lines show is decided again for each command."""
    logging.getLogger("mlpmixer").setLevel(logging.INFO)
    _library_handler().show_progress = progress_wanted(as_json)
