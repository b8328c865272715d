"""The command line: every command has --help; `models` shows the table; errors map to exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from mlpmixer.cli import cli


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


@pytest.mark.parametrize("command", list(_all_commands(cli)), ids=" ".join)
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_models_json_lists_the_family_with_costs():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["mixer_b16_224"]["tokens"] == 196 and rows["mixer_b16_224"][
        "gflops"
    ] == pytest.approx(25.2, abs=0.01)
    assert rows["mixer_h14_224"]["paper_params_m"] == 431 and "mixer_t2_8" in rows


def test_models_table_is_readable_in_a_pipe():
    result = CliRunner().invoke(cli, ["models"], terminal_width=80)
    assert result.exit_code == 0 and "mixer_b16_224" in result.output  # names are never cut
    # issue 18 item 7: `mlpmixer models | cat` cut the N column (blocks) to "…"
    row = next(line for line in result.output.splitlines() if "mixer_b16_224" in line)
    assert "…" not in result.output and row.split()[-2:] == ["768", "12"], row


def test_errors_are_short_and_exit_2_for_bad_input(tmp_path):
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "missing.npz")])
    assert result.exit_code == 2
    assert "error: no such checkpoint" in result.output and "Traceback" not in result.output
    (tmp_path / "bad.npz").write_bytes(b"junk")
    result = CliRunner().invoke(
        cli, ["convert", str(tmp_path / "bad.npz"), str(tmp_path / "o.pth")]
    )
    assert result.exit_code == 2 and "not a readable .npz checkpoint" in result.output
    assert not (tmp_path / "o.pth").exists()
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "missing.npz")
    result = subprocess.run(
        [sys.executable, "-m", "mlpmixer", "--debug", "info", missing],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_the_cli_shows_the_library_log_on_stderr(capsys):
    """The library logs (it never prints); the CLI shows INFO lines plain, warnings marked."""
    import logging

    from mlpmixer.cli.printing import StderrLines, show_library_log

    show_library_log()
    show_library_log()  # installed once, however often a command runs
    handlers = logging.getLogger("mlpmixer").handlers
    assert sum(isinstance(h, StderrLines) for h in handlers) == 1
    capsys.readouterr()
    logging.getLogger("mlpmixer.data.folder").warning("skipping x")
    logging.getLogger("mlpmixer.train.logs").info("epoch 1/2")
    out, err = capsys.readouterr()
    assert err == "warning: skipping x\nepoch 1/2\n" and out == ""
