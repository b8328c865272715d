"""The ``mlpmixer`` command line: a thin layer that parses arguments, calls the library and
prints results. One module per command group; `app` holds the group and what they share.

Exit codes: 0 success, 1 the run failed, 2 bad usage or input (see `mlpmixer.errors`).
"""

from __future__ import annotations

# Importing the command modules registers their commands on `cli`.
from . import analyze, bench, checkpoints, data, evaluate, export, train  # noqa: F401
from .app import cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mlpmixer`` script and ``python -m mlpmixer``."""
    cli.main(args=argv, prog_name="mlpmixer")


__all__ = ["cli", "main"]
