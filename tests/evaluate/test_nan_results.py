"""A nan evaluation or export check is a failure, never a result.

Before: ``eval --std 0`` / ``--mean nan`` exited 0 with loss nan, and the export check took
``max(0.0, nan) == 0.0``: an all-nan model "matched within 0.00e+00".
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.errors import RunError
from mlpmixer.evaluate import evaluate_checkpoint
from mlpmixer.export import export_model


@pytest.mark.parametrize(
    ("flag", "value"), [("--std", "0"), ("--mean", "nan"), ("--std", "inf"), ("--mean", "a,b")]
)
def test_eval_with_a_broken_normalisation_is_bad_input(digits_checkpoint, tmp_path, flag, value):
    path, _ = digits_checkpoint
    args = ["eval", "--checkpoint", str(path), "--dataset", "digits", flag, value]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert flag.lstrip("-") in result.output and "looks like a bug" not in result.output
    assert not (tmp_path / "eval.json").exists()


def test_eval_of_a_nan_model_fails():
    model = create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                         channels_mlp_dim=8, num_classes=10)  # fmt: skip
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(RunError, match="loss is nan"):
        evaluate_checkpoint(model, "digits")


def test_export_check_of_a_nan_model_fails_and_says_nan(tmp_path):
    model = create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                         channels_mlp_dim=8, num_classes=3)  # fmt: skip
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(RunError, match="not finite"):
        export_model(model, tmp_path / "m.ts", "torchscript")
