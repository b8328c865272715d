"""The ``mlpmixer`` command group, and how it turns every failure into a short message and a
documented exit code.

Exit codes: 0 success, 1 the run failed, 2 bad usage or input (see `mlpmixer.errors`),
130 interrupted, 141 the output's reader went away. Errors are one or two lines;
``mlpmixer --debug COMMAND`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
import warnings
from typing import Any

import click

from ..errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILED,
    MixerError,
    Terminated,
)
from ..progress import printable
from .dialect import MixerCommand, MixerSubgroup
from .printing import err_console, show_library_log


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

    command_class = MixerCommand
    group_class = MixerSubgroup

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
        except Terminated as err:  # SIGTERM in training: what is kept, and how to go on
            err_console.print(f"error: {err}", highlight=False, soft_wrap=True)
            ctx.exit(err.exit_code)
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
                    f"error: {type(err).__name__}: {err}", highlight=False, soft_wrap=True
                )
                err_console.print(
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


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:  # fmt: skip
    """Library warnings as one ``warning: ...`` line, escaped, without Python's source path."""
    sys.stderr.write(f"warning: {printable(str(message))}\n")


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
