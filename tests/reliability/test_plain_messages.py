"""Messages are printed as plain text: brackets in a path or value appear verbatim.

Before: the CLI printed through rich markup, so ``[hf]`` vanished from a message, a value
``[0.9]`` printed as nothing, and a path holding ``[/]`` crashed the printer (MarkupError).
Rich's emoji codes too: ``hf:x:d`` printed as ``hf❌d``.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlpmixer.cli import cli


@pytest.mark.parametrize("name", ["x[hf]", "a[/]b", "[bold]c[/bold]", "hf:x:d", "e:smile:f"])
def test_brackets_in_a_path_are_printed_verbatim(tmp_path, name):
    missing = tmp_path / name / "model.safetensors"
    result = CliRunner().invoke(cli, ["info", str(missing)])
    assert result.exit_code == 2, result.output
    assert str(missing) in result.output, result.output
    assert "MarkupError" not in result.output and "looks like a bug" not in result.output


def test_a_bracketed_value_in_a_config_error_is_printed(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "--set", "augment.crop_scale=[0.5,2]", "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2, result.output
    assert "must be [min, max] with" in result.output, result.output
