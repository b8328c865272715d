"""`info` on a file that `predict` refuses says it will not load, exit 2.

Before: extra or missing keys, or complex tensors, gave ``info`` exit 0 and a normal table,
while ``predict`` and ``eval`` refused the same file.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mlpmixer import create_model
from mlpmixer.cli import cli


def _state():
    model = create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                         channels_mlp_dim=8, num_classes=3)  # fmt: skip
    return dict(model.state_dict())


def _extra(state):
    state["extra.weight"] = torch.zeros(2)


def _missing(state):
    del state["norm.bias"]


def _complex(state):
    state["head.weight"] = state["head.weight"].to(torch.complex64)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_extra, "unexpected keys: extra.weight"),
        (_missing, "missing keys: norm.bias"),
        (_complex, "not floating point: head.weight"),
    ],
    ids=["extra", "missing", "complex"],
)
def test_info_says_a_file_predict_refuses_will_not_load(tmp_path, edit, reason):
    state = _state()
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    runner = CliRunner()
    predict = runner.invoke(cli, ["predict", "x.png", "--checkpoint", str(path)])
    assert predict.exit_code == 2 and reason in predict.stderr  # what info must agree with

    shown = runner.invoke(cli, ["info", str(path)])
    assert shown.exit_code == 2, shown.output
    assert f"{path} will not load" in shown.stderr and reason in shown.stderr
    as_json = runner.invoke(cli, ["info", str(path), "--json"])
    assert as_json.exit_code == 2
    data = json.loads(as_json.stdout)
    assert data["loads"] is False and reason in data["load_error"]


def test_info_on_a_good_file_says_it_loads(tmp_path):
    torch.save(_state(), tmp_path / "good.pth")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "good.pth"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["loads"] is True
