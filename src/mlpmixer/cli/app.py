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

from ..choices import PRECISIONS
from ..errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILED,
    MixerError,
    Terminated,
)
from ..progress import StderrLines, printable


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


class ImageSize(click.ParamType):
    """``--img-size``: one size, ``N`` (square) or ``HxW``; the same meaning in every command."""

    name = "N|HxW"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | tuple[int, int]:
        if isinstance(value, int | tuple):
            return value
        parts = str(value).lower().replace(",", "x").split("x")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            sizes = []
        if len(sizes) not in (1, 2) or min(sizes) < 1:
            self.fail(f"{value!r} is not a size: give N (square) or HxW, e.g. 448 or 224x448")
        return sizes[0] if len(sizes) == 1 else (sizes[0], sizes[1])


IMG_SIZE = ImageSize()


def as_pair(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """An ``--img-size`` value as (H, W)."""
    return (size, size) if isinstance(size, int) else size


def img_size_option(help_text: str) -> Any:
    """``--img-size N|HxW`` as every command spells it."""
    return click.option("--img-size", type=IMG_SIZE, default=None, help=help_text)


def resolved_device(ctx: Any, param: Any, value: str) -> str:
    """``--device`` of one-process commands: ``auto`` becomes cuda when available, else cpu."""
    from ..devices import auto_device

    return str(checked_device(ctx, param, auto_device(value)))


def device_option(what: str = "") -> Any:
    """``--device`` as every command spells it: auto (a GPU when there is one) by default."""
    return click.option(
        "--device", default="auto", show_default=True, callback=resolved_device,
        help=f"auto (cuda when available, else cpu), cpu, cuda, cuda:N{what}.",
    )  # fmt: skip


def precision_option(help_text: str = "fp32, or bf16/fp16 autocast.") -> Any:
    """``--precision`` as every command spells it."""
    return click.option(
        "--precision", type=click.Choice(PRECISIONS), default="fp32",
        show_default=True, help=help_text,
    )  # fmt: skip


def threads_option(
    default: str = "torch's; 1 is often fastest for small models on a busy machine",
) -> Any:
    """``--threads N``: torch's CPU threads for the command; ``default`` says what is used
    without it (torch's default, the cores, unless the command chooses)."""
    return click.option(
        "--threads", type=click.IntRange(min=1), default=None,
        help=f"CPU threads (default: {default}).",
    )  # fmt: skip


def workers_option() -> Any:
    """``--workers``: DataLoader processes that read and resize images."""
    return click.option(
        "--workers", type=click.IntRange(min=0), default=0, show_default=True,
        help="Data-loading processes (0: in this process).",
    )  # fmt: skip


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


# The one dialect of every command (tests/test_cli_dialect.py checks each command against it):
# output locations are --out, the device --device (default auto), the number format
# --precision, data-loading processes --workers, and --img-size is one size (N or HxW).
# Old spellings still work for a while, with a one-line deprecation warning on stderr.
DEPRECATED_OPTIONS = {
    "--out-dir": "--out",
    "--output": "--out",
    "--dtype": "--precision",
}


def _split_option(arg: str) -> tuple[str, str | None]:
    name, sep, value = arg.partition("=")
    return (name, value) if sep and arg.startswith("--") else (arg, None)


def _is_int(text: str) -> bool:
    return text.isdigit()


def modern_args(command: click.Command, args: list[str]) -> list[str]:
    """``args`` with deprecated option spellings replaced by the dialect's, each replacement
    announced once on stderr; ``--img-size H W`` (two numbers) becomes ``--img-size HxW``."""
    names = {n for p in command.params for n in getattr(p, "opts", [])}
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out += args[i:]
            break
        name, value = _split_option(arg)
        new = DEPRECATED_OPTIONS.get(name)
        if new and name not in names and new in names:
            deprecated(name, new)
            arg = new if value is None else f"{new}={value}"
        if arg == "--img-size" and _pair_follows(args, i):
            deprecated("--img-size H W", "--img-size HxW")
            out += [arg, f"{args[i + 1]}x{args[i + 2]}"]
            i += 3
            continue
        out.append(arg)
        i += 1
    return out


def _pair_follows(args: list[str], i: int) -> bool:
    return i + 2 < len(args) and _is_int(args[i + 1]) and _is_int(args[i + 2])


def deprecated(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works, for a while; ``new`` is the dialect's."""
    sys.stderr.write(f"warning: {old} is deprecated and will be removed; use {new}\n")


class MixerCommand(click.Command):
    """A command that speaks the dialect: old option spellings are translated (with a warning)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, modern_args(self, args))
        show_library_log(as_json=bool(ctx.params.get("as_json")))
        return rest


class MixerSubgroup(click.Group):
    """A command group (``analyze``) whose commands speak the dialect."""

    command_class = MixerCommand


MixerGroup.command_class = MixerCommand
MixerGroup.group_class = MixerSubgroup


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


RESULTS = "results"


def out_option(command: str, writes: str) -> Any:
    """``--out DIR`` with the default ``results/<command>`` (a command about no checkpoint:
    ``analyze permutation``); ``writes`` says what goes there."""
    return click.option(
        "--out",
        callback=dir_or_new,  # /dev/null or a file: a usage error, not a crash
        default=f"{RESULTS}/{command}",
        show_default=True,
        help=writes,
    )


def beside_checkpoint_option(
    writes: str, folder: str = "<command>-<data>", fallback: str | None = None
) -> Any:
    """``--out DIR`` of the commands about a checkpoint: by default their files go next to it
    (`beside_checkpoint`), never to ./results. For a hub id or URL, nothing is written
    unless ``fallback`` (``results/<fallback>``: commands whose files are what was asked
    for, such as analyze tokens and cka; see `product_dir`)."""
    elsewhere = (
        "nothing is written unless --out is given" if fallback is None else f"{RESULTS}/{fallback}/"
    )
    return click.option(
        "--out", callback=dir_or_new, default=None,
        help=f"{writes} Default: next to the checkpoint (RUN/{folder}/ for a run's model); "
        f"for a hub id or URL, {elsewhere}.",
    )  # fmt: skip


def product_dir(out: str | None, checkpoint: str, folder: str) -> Path:
    """``--out``, else ``folder`` next to ``checkpoint``, else ``results/<folder>`` (a hub id
    or URL has no local place, and these commands exist to write their files)."""
    if out is not None:
        return Path(out)
    return beside_checkpoint(checkpoint, folder) or Path(RESULTS, folder)


def beside_checkpoint(checkpoint: str, folder: str) -> Path | None:
    """Where results about ``checkpoint`` go by default: ``folder`` inside its run directory
    (for RUN, RUN/model or RUN/checkpoints/last.pt), or next to a local checkpoint file or
    folder; None for a hub id or URL (no local place)."""
    from ..checkpoints.run_dir import is_run_dir

    path = Path(checkpoint).expanduser()
    if "://" in checkpoint or ":" in checkpoint.split("/")[0] or not path.exists():
        return None
    base = path if path.is_dir() else path.parent
    for candidate in (base, base.parent):
        if is_run_dir(candidate):
            return candidate / folder
    return (base.parent if path.is_dir() else base) / folder


def slug(text: str) -> str:
    """``text`` (a data set name or path) as one safe path component (the run directory's
    rule, `mlpmixer.train.names.slug`; imported here, in a command, never at startup)."""
    from ..train.names import slug as one_rule

    return one_rule(text)


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
