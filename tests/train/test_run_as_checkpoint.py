"""A run directory and its ``checkpoints/last.pt`` are checkpoints, as the README says.

Before: ``eval --checkpoint runs/<run>`` and ``--checkpoint runs/<run>/checkpoints/last.pt``
failed ("no model.safetensors" / not a model checkpoint).
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mlpmixer import load_model
from mlpmixer.cli import cli
from mlpmixer.errors import CheckpointError

TINY = ["--set", "model.overrides.hidden_dim=8", "--set", "model.overrides.num_blocks=1",
        "--set", "model.overrides.tokens_mlp_dim=4", "--set", "model.overrides.channels_mlp_dim=8",
        "--set", "train.threads=1", "--set", "run.progress=none", "--set", "run.plot=false",
        "--set", "data.num_workers=0"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    args = ["train", "--model", "mixer_t2_8", "--steps", "3", "--batch-size", "16"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--set", "train.ema_decay=0.9",
                                      *TINY])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _same(a, b):
    assert a.config == b.config
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_a_run_directory_loads_as_the_model_it_reports(run):
    reported = json.loads((run / "summary.json").read_text())["checkpoint"]
    _same(load_model(run), load_model(reported))


def test_last_pt_loads_as_the_weights_of_the_latest_checkpoint(run):
    # after a finished run, last.pt holds the final weights: the same as model/
    _same(load_model(run / "checkpoints" / "last.pt"), load_model(run / "model"))


@pytest.mark.parametrize("where", ["", "checkpoints/last.pt"])
def test_eval_accepts_a_run_directory_and_last_pt(run, tmp_path, where):
    args = ["eval", "--checkpoint", str(run / where), "--dataset", "digits", "--json"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_examples"] > 0


def test_an_unfinished_run_says_what_to_use(run, tmp_path):
    unfinished = tmp_path / "run"
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "config.yaml").write_text((run / "config.yaml").read_text())
    with pytest.raises(CheckpointError, match="has not finished.*last.pt"):
        load_model(unfinished)


def test_the_format_of_last_pt_is_one_of_the_listed_formats(run):
    # before: detect_format said "training", which FORMATS did not list
    from mlpmixer.checkpoints import FORMATS, detect_format

    assert detect_format(run / "checkpoints" / "last.pt") == "training"
    assert "training" in FORMATS
