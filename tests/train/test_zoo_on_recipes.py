"""A zoo model on a built-in recipe (#28): the recipe's model fields (the digits recipe's
Mixer patch_size, hidden_dim, ...) belong to the model family they were written for. However
the model is changed — ``--model`` on a recipe, ``--config recipe.yaml --model``, ``--set
model.name=`` — a model of another config class starts from its own config at the recipe's
image size (the data's); the fields given with the change still apply. Before, the last two
refused: ``unknown model override(s) model.overrides.channels_mlp_dim, ...``.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlpmixer.cli import cli
from mlpmixer.train.presets import load_recipe, resolve_config

ZOO_NAMES = ["vip_s7", "cyclemlp_b1", "asmlp_tiny", "wavemlp_t", "hiremlp_tiny"]
TINY = {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}  # CycleMLP's smallest useful


@pytest.mark.parametrize("name", ZOO_NAMES)
@pytest.mark.parametrize("way", ["--model", "--config --model", "--set model.name"])
def test_every_way_of_choosing_a_zoo_model_drops_the_recipes_mixer_fields(name, way):
    if way == "--model":
        config = resolve_config(dataset="digits", model=name)
    elif way == "--config --model":
        config = resolve_config(load_recipe("digits"), model=name)
    else:
        config = resolve_config(dataset="digits", overrides=[f"model.name={name}"])
    assert config.model.name == name
    assert config.model.overrides == {}  # patch_size, hidden_dim, ... were the Mixer's
    assert config.model.img_size == 16  # the recipe's (the data's) size


def test_fields_given_with_the_change_stay():
    config = resolve_config(
        dataset="digits",
        overrides=["model.name=cyclemlp_b1", "model.overrides.depths=[1, 1, 1, 1]"],
    )
    assert config.model.overrides == {"depths": [1, 1, 1, 1]}


def test_a_mixer_keeps_the_recipes_mixer_fields():
    config = resolve_config(load_recipe("digits"), model="mixer_s16_224")
    assert config.model.overrides["hidden_dim"] == 64  # same config class: they apply


@pytest.mark.parametrize("way", [["--config", "CONFIG"], ["--dataset", "digits", "--set"]])
def test_train_a_zoo_model_on_the_digits_recipe_through_the_cli(way, tmp_path):
    recipe = tmp_path / "digits.yaml"
    recipe.write_text(json.dumps(load_recipe("digits").to_dict()))
    args = ["train"] + [str(recipe) if a == "CONFIG" else a for a in way]
    args += ["model.name=cyclemlp_b1"] if way[-1] == "--set" else ["--model", "cyclemlp_b1"]
    for key, value in TINY.items():
        args += ["--set", f"model.overrides.{key}={json.dumps(value)}"]
    args += ["--steps", "1", "--batch-size", "8", "--out", str(tmp_path / "run"), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "cyclemlp_b1" in saved and "hidden_dim" not in saved


def test_vip_on_digits_is_refused_naming_the_size(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "--model", "vip_s7", "--dataset", "digits", "--steps", "1",
              "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "(16, 16)" in lines[0] and "img_size must be 224" in lines[0]
