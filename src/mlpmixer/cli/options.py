"""The options several commands share, spelled the same everywhere (the dialect), and the
flag types that refuse a value that makes no sense as a usage error (exit 2) naming the flag,
never silently dropped or turned into a traceback later."""

from __future__ import annotations

import math
from typing import Any

import click

from ..choices import PRECISIONS


class _FiniteFloatRange(click.FloatRange):
    """A float range that also refuses nan and inf (they compare False, so a range lets them in)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


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


def calibration_options(data_help: str, count_help: str) -> Any:
    """``--calibration DATA`` (a data set whose training images calibrate or check int8)
    and ``--calibration-images N`` (default 512), as export --int8 and quantize take them."""

    def decorate(command: Any) -> Any:
        command = click.option("--calibration-images", type=POSITIVE_INT, default=512,
                               show_default=True, help=count_help)(command)  # fmt: skip
        return click.option("--calibration", default=None, metavar="DATA", help=data_help)(command)

    return decorate


def checked_device(ctx: Any, param: Any, value: str | None) -> str | None:
    """``--device`` callback: an unknown or absent device is bad input, before any work."""
    from ..devices import check_device

    if value is not None and value != "auto":
        check_device(value)
    return value


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


# The option every command that reads a trained model shares.
checkpoint_option = click.option(
    "--checkpoint",
    required=True,
    help="Run directory (or its model/, checkpoints/last.pt), .safetensors, .npz, timm file or hub id.",
)


def int_list(value: str, name: str) -> list[int]:
    """``1,2,3`` (the value of option ``name``) as integers; anything else is a usage error."""
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {value!r}", param_hint=name
        ) from None
