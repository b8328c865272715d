"""The one dialect of every command, and the old spellings it still accepts.

Output locations are --out, the device --device (default auto), the number format
--precision, data-loading processes --workers, and --img-size is one size (N or HxW);
tests/test_cli_dialect.py checks each command against it. Old spellings still work for a
while, translated before click parses them, with a one-line deprecation warning on stderr.
"""

from __future__ import annotations

import sys

import click

from .printing import show_library_log

DEPRECATED_OPTIONS = {
    "--out-dir": "--out",
    "--output": "--out",
    "--dtype": "--precision",
}


def deprecated(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works, for a while; ``new`` is the dialect's."""
    sys.stderr.write(f"warning: {old} is deprecated and will be removed; use {new}\n")


def _split_option(arg: str) -> tuple[str, str | None]:
    name, sep, value = arg.partition("=")
    return (name, value) if sep and arg.startswith("--") else (arg, None)


def _pair_follows(args: list[str], i: int) -> bool:
    return i + 2 < len(args) and args[i + 1].isdigit() and args[i + 2].isdigit()


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


class MixerCommand(click.Command):
    """A command that speaks the dialect: old option spellings are translated (with a warning)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, modern_args(self, args))
        show_library_log(as_json=bool(ctx.params.get("as_json")))
        return rest


class MixerSubgroup(click.Group):
    """A command group (``analyze``, ``data``) whose commands speak the dialect."""

    command_class = MixerCommand
