"""One recipe, one code path: `mlpmixer.train()` and ``mlpmixer train`` resolve the same
config (issue 18 item 1), ``--model`` keeps the recipe's sizes (item 2), and a class folder
gets defaults sized from its images (item 3).

Before: ``train()`` started from the dataclass defaults (a 540k-parameter 8x8 model, lr 1e-3,
30 epochs, no augmentation: 0.9666) while the CLI used configs/digits.yaml (0.9944);
``--model gmlp_s16_224`` trained at 224 px on 8x8 digits; a folder of 64-px JPEGs got a
224-px Mixer-S/16 and batch 128.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import mlpmixer
import mlpmixer.train.run as run_module
from mlpmixer.cli import cli
from mlpmixer.cli.train import flag_overrides
from mlpmixer.models.config import to_pair
from mlpmixer.train import load_config
from mlpmixer.train.presets import resolve_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class _Started(Exception):
    """Raised where a run would start working, carrying the config it resolved."""


@pytest.fixture
def started(monkeypatch):
    """Stop every run at its first step; the configs they would have run are collected."""
    seen = []

    def stop(config, device):
        seen.append(config)
        raise _Started

    monkeypatch.setattr(run_module, "_configure_torch", stop)
    return seen


def _cli_config(args, started):
    result = CliRunner().invoke(cli, ["train", *args])
    assert isinstance(result.exception, SystemExit | _Started) and started, result.output
    return started.pop()


def test_train_without_arguments_is_the_cli_default_is_configs_digits(started, tmp_path):
    from mlpmixer.train import train

    with pytest.raises(_Started):
        train(overrides=[f"run.out={tmp_path / 'py'}"])
    python = started.pop()
    cli_config = _cli_config(["--out", str(tmp_path / "py")], started)
    assert python == cli_config
    recipe = load_config(CONFIGS / "digits.yaml").override([f"run.out={tmp_path / 'py'}"])
    assert python == recipe
    assert python.model.img_size == 16 and python.optim.lr == 5e-3 and python.train.epochs == 40


def test_python_and_cli_resolve_the_same_flags(started):
    from mlpmixer.train import train

    with pytest.raises(_Started):
        train(dataset="cifar10", model="gmlp_s16_224", overrides=["train.epochs=3"])
    python = started.pop()
    args = ["--dataset", "cifar10", "--model", "gmlp_s16_224", "--epochs", "3"]
    assert _cli_config(args, started) == python


def test_import_mlpmixer_then_train_is_the_function(started):
    assert callable(mlpmixer.train) and "train" in mlpmixer.__all__
    with pytest.raises(_Started):
        mlpmixer.train()
    assert started.pop() == load_config(CONFIGS / "digits.yaml")
    from importlib import import_module

    config_module = import_module("mlpmixer.train.config")  # still a package of modules
    assert config_module.TrainConfig is mlpmixer.train.TrainConfig


def test_model_flag_keeps_the_recipes_image_and_patch_size():
    config = resolve_config(model="gmlp_s16_224")
    assert config.model.name == "gmlp_s16_224"
    assert to_pair(config.model.img_size, "s") == (16, 16)
    assert to_pair(config.model.overrides["patch_size"], "p") == (4, 4)
    assert "hidden_dim" not in config.model.overrides  # the recipe model's width is not kept
    cifar = resolve_config(dataset="cifar10", model="mixer_b16_224")
    assert to_pair(cifar.model.img_size, "s") == (32, 32) and to_pair(
        cifar.model.overrides["patch_size"], "p"
    ) == (4, 4)
    explicit = resolve_config(
        model="gmlp_s16_224", overrides=flag_overrides(img_size=8)
    )  # a flag still wins
    assert to_pair(explicit.model.img_size, "s") == (8, 8)


def _folder(root: Path, classes: int = 3, per_class: int = 30, side: int = 64) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.jpg")
    return root


def test_a_class_folder_gets_defaults_sized_from_its_images(tmp_path, caplog):
    folder = _folder(tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        config = resolve_config(dataset=str(folder))
    assert config.model.name == "mixer_s4_32" and to_pair(config.model.img_size, "s") == (32, 32)
    assert config.train.batch_size == 16  # 81 training images: a quarter, as a power of two
    assert config.train.epochs * (81 // 16) >= 300  # enough steps to learn something
    assert "defaults from the data (81 training images, 3 classes, images ~64 px)" in caplog.text
    flags = flag_overrides(batch_size=8, epochs=2)
    chosen = resolve_config(dataset=str(folder), model="mixer_t2_8", overrides=flags)
    assert (chosen.train.batch_size, chosen.train.epochs) == (8, 2)
    assert chosen.model.name == "mixer_t2_8" and to_pair(chosen.model.img_size, "s") == (32, 32)
    assert resolve_config(dataset=str(tmp_path / "missing")).model.name == "auto"


def test_the_data_defaults_line_shows_the_values_after_the_flags(tmp_path, caplog):
    """The line is the run's values: `--epochs 3` is not reported as the default's 60."""
    folder = _folder(tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        resolve_config(
            dataset=str(folder), overrides=flag_overrides(batch_size=8, epochs=3, img_size=16)
        )
    line = next(
        r.getMessage() for r in caplog.records if "defaults from the data" in r.getMessage()
    )
    assert "image size 16," in line and "batch size 8," in line and "epochs 3 " in line
