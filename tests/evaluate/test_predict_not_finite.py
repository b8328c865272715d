"""`predict` with a model whose outputs are nan/inf: a failure per image, never a prediction.

Before: exit 0, "8 (nan)" printed as a prediction, and ``--json`` / predictions.json held
``NaN``, which is not JSON.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.evaluate.predict import predict_files


def _model():
    return create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                        channels_mlp_dim=8, num_classes=3, in_chans=1)  # fmt: skip


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_outputs_are_failures_not_predictions(image, bad):
    model = _model()
    with torch.no_grad():
        model.head.bias.fill_(bad)
    report = predict_files(model, [str(image)])
    assert report.predictions == [] and not report.ok
    assert report.failures[0]["path"] == str(image)
    assert "not finite" in report.failures[0]["error"]


def test_one_nan_row_fails_alone(image, tmp_path):
    """Only the image whose logits are nan fails; the batch's other image is predicted."""
    other = tmp_path / "b.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(other)
    model = _model()
    real_forward = model.forward

    def nan_for_first(x):
        out = real_forward(x).clone()
        out[0] = float("nan")
        return out

    model.forward = nan_for_first
    report = predict_files(model, [str(image), str(other)])
    assert [p.path for p in report.predictions] == [str(other)]
    assert [f["path"] for f in report.failures] == [str(image)]


def test_the_command_exits_1_and_writes_strict_json(image, tmp_path):
    model = _model()
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan-model")
    args = ["predict", str(image), "--checkpoint", str(tmp_path / "nan-model"), "--json"]
    result = CliRunner().invoke(cli, [*args, "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "NaN" not in result.stdout and "(nan)" not in result.output
    data = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert data["predictions"] == [] and "not finite" in data["failures"][0]["error"]
    saved = (tmp_path / "out" / "predictions.json").read_text()
    json.loads(saved, parse_constant=lambda c: pytest.fail(f"{c} in predictions.json"))
    assert "not finite" in result.stderr
