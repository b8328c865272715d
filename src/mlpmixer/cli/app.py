"""The ``mlpmixer`` command group and what every command shares: error handling with
documented exit codes, the consoles, common options and small argument parsers.

Exit codes: 0 success, 1 the run failed, 2 bad usage or input (see `mlpmixer.errors`).
Errors are one or two lines; ``mlpmixer --debug COMMAND`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_RUN_FAILED, MixerError
from ..progress import is_progress


def _without_worker_traceback(message: str) -> str:
    """The original error's own line when a DataLoader worker re-raised it with its traceback.

    PyTorch rebuilds an exception from a worker process as ``Caught X in DataLoader worker
    process N.`` followed by the worker's whole traceback; the user needs only the last line
    (``mlpmixer.errors.DataError: cannot read image PATH: ...``); ``--debug`` shows the rest.
    """
    if "DataLoader worker" not in message or "Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    name, sep, text = last.partition(": ")
    return text if sep and "Error" in name else last


class MixerGroup(click.Group):
    """A click group that turns library errors into short messages and documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv[1:] or ctx.params.get("debug", False)
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a reader gone by now is met here, not in Python's exit
            return result
        except MixerError as err:
            if debug:
                traceback.print_exc()
            message = _without_worker_traceback(str(err))
            err_console.print(f"error: {message}", highlight=False, soft_wrap=True)
            ctx.exit(err.exit_code)
        except click.ClickException as err:  # usage errors quote what the user typed
            err.message = printable(err.message, keep_newlines=True)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `mlpmixer predict ... | head -1`: quiet, like `yes | head -1`
            _silence_stdout()
            ctx.exit(EXIT_BROKEN_PIPE)
        except OSError as err:  # the system refused (disk full, read-only, permission)
            if debug:
                traceback.print_exc()
            where = f" ({err.filename})" if err.filename else ""
            full = err.errno in (errno.ENOSPC, errno.EDQUOT)
            hint = _os_error_hint(full, ctx.invoked_subcommand)
            err_console.print(
                f"error: {err.strerror or err}{where}; {hint}",
                highlight=False,
                soft_wrap=True,
            )
            ctx.exit(EXIT_RUN_FAILED)
        except Exception as err:  # an unexpected failure: say so briefly, traceback on --debug
            if debug:
                traceback.print_exc()
            else:
                err_console.print(
                    f"error: {type(err).__name__}: {err}\n"
                    "(this looks like a bug; run with --debug for the traceback and report it)",
                    highlight=False,
                    soft_wrap=True,
                )
            ctx.exit(EXIT_RUN_FAILED)


def _os_error_hint(full_disk: bool, command: str | None) -> str:
    """What to do after the system refused a write; only training can be resumed."""
    if not full_disk:
        return "check the path and its permissions"
    if command in ("train", "finetune"):
        return (
            "free space and continue with --resume RUN_DIR (the last checkpoint is complete: "
            "writes are atomic)"
        )
    return "free space and run again"


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and Python's final flush would
    otherwise report the broken pipe itself (and exit 120)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _SafeConsole(Console):
    """A console that escapes control characters in the strings it prints (newlines kept):
    messages quote file names, class names and values from files and the command line, and
    an ANSI or OSC sequence in one would drive the terminal."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        safe = [printable(o, keep_newlines=True) if isinstance(o, str) else o for o in objects]
        super().print(*safe, **kwargs)


# Messages, paths and class names are printed as plain text: with rich's markup on, any
# "[...]" in them was swallowed ("mlpmixer[hf]" lost "[hf]") or crashed the printer.
console = _SafeConsole(markup=False, highlight=False)
err_console = _SafeConsole(stderr=True, markup=False, highlight=False)


class _FiniteFloatRange(click.FloatRange):
    """A float range that also refuses nan and inf (they compare False, so a range lets them in)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# Numeric flag types: a value that makes no sense is a usage error (exit 2) naming the flag,
# never silently dropped or turned into a traceback later.
POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)
POSITIVE_FLOAT = _FiniteFloatRange(min=0, min_open=True)
NON_NEGATIVE_FLOAT = _FiniteFloatRange(min=0)
FRACTION = _FiniteFloatRange(min=0, max=1, min_open=True)  # crop_pct: (0, 1]
SEED = click.IntRange(0, 2**32 - 1)  # numpy's and the DataLoader's generators take < 2**32


def checked_device(ctx: Any, param: Any, value: str | None) -> str | None:
    """``--device`` callback: an unknown or absent device is bad input, before any work."""
    from ..devices import check_device

    if value is not None and value != "auto":
        check_device(value)
    return value


def dir_or_new(ctx: Any, param: Any, value: str | None) -> str | None:
    """An output directory must be a directory or not exist yet (/dev/null is neither)."""
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise click.BadParameter(f"{value} exists and is not a directory", ctx, param)
    return value


def regular_file_or_new(path: Path | None, flag: str) -> Path | None:
    """An output file must be new or a regular file: /dev/null, a FIFO... cannot be replaced."""
    if path is not None and path.exists() and not path.is_file():
        raise click.BadParameter(f"{path} exists and is not a regular file", param_hint=flag)
    return path


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters escaped (``\\x1b``...): class names and file names
    come from files, and an ANSI escape in one would drive the terminal. ``keep_newlines``:
    a message's own line breaks stay."""
    if text.isprintable():
        return text
    kept = "\n" if keep_newlines else ""
    return "".join(c if c.isprintable() or c in kept else ascii(c)[1:-1] for c in text)


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:  # fmt: skip
    """Library warnings as one ``warning: ...`` line, escaped, without Python's source path."""
    sys.stderr.write(f"warning: {printable(str(message))}\n")


# The option every command that reads a trained model shares.
checkpoint_option = click.option(
    "--checkpoint",
    required=True,
    help="Run directory (or its model/, checkpoints/last.pt), .safetensors, .npz, timm file or hub id.",
)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group(cls=MixerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="mlpmixer")
def cli(debug: bool) -> None:
    """MLP-Mixer for PyTorch: models, checkpoints, training, evaluation and analyses.

    Exit codes: 0 success, 1 run failed, 2 bad usage or input, 130 interrupted, 141 the
    output's reader went away (e.g. | head).
    """
    warnings.showwarning = _show_warning
    show_library_log()


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
            sys.stderr.write(f"{prefix}{printable(record.getMessage(), keep_newlines=True)}\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def progress_wanted() -> bool:
    """Progress lines when stderr is a terminal; MLPMIXER_PROGRESS=1 forces them (logs, CI),
    =0 silences them. Never on stdout: --json stays parseable."""
    setting = os.environ.get("MLPMIXER_PROGRESS", "auto")
    return setting == "1" or (setting == "auto" and sys.stderr.isatty())


def show_library_log() -> None:
    """Show what the library logs (INFO and up on the ``mlpmixer`` logger) on stderr: one
    handler, installed once; whether progress lines show is decided again for each command."""
    logger = logging.getLogger("mlpmixer")
    logger.setLevel(logging.INFO)
    handler = next((h for h in logger.handlers if isinstance(h, StderrLines)), None)
    if handler is None:
        handler = StderrLines()
        logger.addHandler(handler)
    handler.show_progress = progress_wanted()


RESULTS = "results"


def out_dir_option(command: str, writes: str) -> Any:
    """``--out-dir`` with the default ``results/<command>``; ``writes`` says what goes there."""
    return click.option(
        "--out-dir",
        callback=dir_or_new,  # /dev/null or a file: a usage error, not a crash
        default=f"{RESULTS}/{command}",
        show_default=True,
        help=writes,
    )


def int_list(value: str, name: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {value!r}", param_hint=name
        ) from None


def floats(value: str | None, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers, got {value!r}", param_hint=name
        ) from None
