"""The ``mlpmixer`` command group and what every command shares: error handling with
documented exit codes, the consoles, common options and small argument parsers.

Exit codes: 0 success, 1 the run failed, 2 bad usage or input (see `mlpmixer.errors`).
Errors are one or two lines; ``mlpmixer --debug COMMAND`` shows the traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import traceback
from typing import Any

import click
from rich.console import Console

from ..errors import EXIT_RUN_FAILED, MixerError

console = Console()
err_console = Console(stderr=True)


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
            return super().invoke(ctx)
        except MixerError as err:
            if debug:
                traceback.print_exc()
            message = _without_worker_traceback(str(err))
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            ctx.exit(err.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            ctx.exit(130)
        except OSError as err:  # the system refused (disk full, read-only, permission)
            if debug:
                traceback.print_exc()
            where = f" ({err.filename})" if err.filename else ""
            full = err.errno in (errno.ENOSPC, errno.EDQUOT)
            hint = (
                "free space and run again (training: --resume RUN_DIR continues from the last "
                "checkpoint, which is complete: writes are atomic)"
                if full
                else "check the path and its permissions"
            )
            err_console.print(
                f"[bold red]error:[/] {err.strerror or err}{where}; {hint}",
                highlight=False,
                soft_wrap=True,
            )
            ctx.exit(EXIT_RUN_FAILED)
        except Exception as err:  # an unexpected failure: say so briefly, traceback on --debug
            if debug:
                traceback.print_exc()
            else:
                err_console.print(
                    f"[bold red]error:[/] {type(err).__name__}: {err}\n"
                    "(this looks like a bug; run with --debug for the traceback and report it)",
                    highlight=False,
                    soft_wrap=True,
                )
            ctx.exit(EXIT_RUN_FAILED)


# The option every command that reads a trained model shares.
checkpoint_option = click.option(
    "--checkpoint",
    required=True,
    help="Run directory model/, .safetensors, .npz, timm file or hub id.",
)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group(cls=MixerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="mlpmixer")
def cli(debug: bool) -> None:
    """MLP-Mixer for PyTorch: models, checkpoints, training, evaluation and analyses.

    Exit codes: 0 success, 1 run failed, 2 bad usage or input.
    """
    show_library_log()


class StderrLines(logging.Handler):
    """The library's log records as lines on stderr: warnings as ``warning: ...``, notices plain.

    ``sys.stderr`` is looked up for every record: click's test runner swaps it per command.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            sys.stderr.write(f"{prefix}{record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def show_library_log() -> None:
    """Show what the library logs (INFO and up on the ``mlpmixer`` logger) on stderr, once."""
    logger = logging.getLogger("mlpmixer")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, StderrLines) for h in logger.handlers):
        logger.addHandler(StderrLines())


RESULTS = "results"


def out_dir_option(command: str, writes: str) -> Any:
    """``--out-dir`` with the default ``results/<command>``; ``writes`` says what goes there."""
    return click.option("--out-dir", default=f"{RESULTS}/{command}", show_default=True, help=writes)


def int_list(value: str, name: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {value!r}", param_hint=name
        ) from None


def floats(value: str | None) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in value.split(","))
