"""``--out``: where each command writes its files, and what may stand there.

Commands about no checkpoint write to ``results/<command>`` by default; commands about a
checkpoint write next to it (inside its run directory), never to ./results, unless the
checkpoint is a hub id or URL (no local place).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

RESULTS = "results"


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
