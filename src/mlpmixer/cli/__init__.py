"""The ``mlpmixer`` command line: a thin layer that parses arguments, calls the library and
prints results. One module per command group (checkpoints, train, evaluate, export,
quantize, analyze, bench, data); what they share, one module per concept: `root` (the group; failures as
messages and exit codes), `dialect` (option spellings, old ones translated), `options`
(the shared options and flag types), `out_dir` (where ``--out`` goes), `printing` (stdout,
stderr and the library's log lines).

Exit codes: 0 success, 1 the run failed, 2 bad usage or input (see `mlpmixer.errors`).
"""

from __future__ import annotations

# Importing the command modules registers their commands on `cli`.
from . import analyze, bench, checkpoints, data, evaluate, export, quantize, train  # noqa: F401
from .root import cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mlpmixer`` script and ``python -m mlpmixer``."""
    cli.main(args=argv, prog_name="mlpmixer")


__all__ = ["cli", "main"]
