"""A bare state dict loads with default preprocessing, and says so.

Before: a native model whose metadata was stripped and whose config.json was deleted loaded
as a bare state dict with the default mean/std and crop (eval 0.958 instead of 0.994)
without a word.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from mlpmixer import create_model, load_model, save_model
from mlpmixer.cli import cli


def _model(**fields):
    return create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                        channels_mlp_dim=8, num_classes=3, **fields)  # fmt: skip


def test_stripped_metadata_and_no_config_warns_that_preprocessing_is_a_default(tmp_path):
    folder = tmp_path / "model"
    _model(mean=(0.1,), std=(0.2,)).save_pretrained(folder)
    (folder / "config.json").unlink()
    weights = folder / "model.safetensors"
    save_file(load_file(weights), weights)  # the same tensors, no metadata
    result = CliRunner().invoke(cli, ["info", str(folder)])
    assert "warning: " in result.stderr and "defaults are used" in result.stderr, result.output
    with pytest.warns(UserWarning, match="preprocessing is unknown, so the defaults are used"):
        model = load_model(folder)
    assert model.config.mean == _model().config.mean  # the default, as the warning says


def test_a_state_dict_with_its_sidecar_loads_without_the_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_model(_model(mean=(0.1,)), tmp_path / "m.pth", format="state_dict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(tmp_path / "m.pth").config.mean == (0.1,)


def test_a_bare_pth_without_a_sidecar_warns(tmp_path):
    torch.save(dict(_model().state_dict()), tmp_path / "m.pth")
    with pytest.warns(UserWarning, match="m.pth holds weights only"):
        load_model(tmp_path / "m.pth")
