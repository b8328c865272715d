"""A command added in one file gets the shared behaviour from the cli modules it imports
(docs/architecture.md, "Command-line layout"): errors as one line and a documented exit
code (root), old option spellings translated (dialect), the shared flag types (options) and
``--out`` (out_dir)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from mlpmixer.cli.options import POSITIVE_INT
from mlpmixer.cli.out_dir import out_option
from mlpmixer.cli.printing import print_json
from mlpmixer.cli.root import MixerGroup
from mlpmixer.errors import EXIT_BAD_INPUT, DataError


def _toy_group() -> click.Group:
    @click.group(cls=MixerGroup)
    def toy() -> None:
        """A group of its own, so the real `cli` is left as it is."""

    @toy.command()
    @click.option("--count", type=POSITIVE_INT, default=1)
    @out_option("toy", "Writes nothing.")
    def echo(count: int, out: str) -> None:
        if count == 13:
            raise DataError(f"unlucky count {count}")
        print_json({"count": count, "out": out})

    return toy


def test_a_toy_command_speaks_the_dialect_and_maps_errors_to_exit_codes(tmp_path):
    toy, runner = _toy_group(), CliRunner()
    done = runner.invoke(toy, ["echo", "--count", "2", "--out-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().startswith("{") and str(tmp_path) in done.stdout
    assert "--out-dir is deprecated and will be removed; use --out" in done.stderr
    assert "results/toy" in runner.invoke(toy, ["echo", "--help"]).output
    bad = runner.invoke(toy, ["echo", "--count", "13"])
    assert (bad.exit_code, bad.stderr) == (EXIT_BAD_INPUT, "error: unlucky count 13\n")
    usage = runner.invoke(toy, ["echo", "--count", "0"])
    assert usage.exit_code == 2 and "--count" in usage.stderr
