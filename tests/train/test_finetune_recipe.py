"""Fine-tuning fits short runs and the data set (issue 18 item 4).

Before: ``finetune --steps 200`` kept the recipe's 500 warmup steps, cut to the 199 there
were, so the LR rose for the whole run and fell to 0 in one step (48.75% from a 99.44%
model), without notice; and digits got the ImageNet inception crop (down to 8%) and flips.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from mlpmixer.train import finetune_config, preset
from mlpmixer.train.config import ScheduleSection
from mlpmixer.train.optim import build_scheduler


def _lrs(cfg: ScheduleSection, total: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, cfg, 1.0, total, 10)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_a_short_run_scales_the_warmup_and_says_so(caplog):
    recipe = finetune_config("ckpt", "cifar10").schedule
    assert recipe.warmup_steps == 500
    with caplog.at_level(logging.WARNING, logger="mlpmixer"):
        lrs = _lrs(recipe, 200)
    peak = max(range(200), key=lambda s: lrs[s])
    assert peak == 9  # 5% of 200 steps, then 190 steps of cosine decay
    # then cosine from step 10 to 0 at step 199: lr_factor's span of 189 steps
    assert lrs[100] == pytest.approx(0.5 * (1 + math.cos(math.pi * 90 / 189)), rel=1e-9)
    expected = "500 warmup steps are more than 20% of this 200-step run: warming up for 10 steps"
    assert expected in caplog.text


def test_a_long_run_keeps_the_recipes_warmup_and_the_switch_keeps_it_anyway(caplog):
    recipe = finetune_config("ckpt", "cifar10").schedule
    with caplog.at_level(logging.WARNING, logger="mlpmixer"):
        assert max(range(3000), key=_lrs(recipe, 3000).__getitem__) == 499
    assert "warming up" not in caplog.text
    kept = ScheduleSection(name="cosine", warmup_steps=500, scale_warmup=False)
    assert max(range(200), key=_lrs(kept, 200).__getitem__) == 198


def test_fine_tuning_digits_takes_the_digits_augmentation_not_imagenets():
    digits = finetune_config("ckpt", "digits")
    assert not digits.augment.random_resized_crop and not digits.augment.hflip
    assert digits.augment == preset("digits").augment
    cifar = finetune_config("ckpt", "cifar10")  # natural images: the paper's inception crop
    assert cifar.augment.random_resized_crop and cifar.augment.hflip
    assert digits.optim == cifar.optim and digits.schedule == cifar.schedule  # the paper's


def test_a_fine_tunes_curves_are_titled_with_the_run_and_show_the_lr(tmp_path, monkeypatch):
    import mlpmixer
    import mlpmixer.train.run as run_module
    from mlpmixer.train import train

    seen = {}
    monkeypatch.setattr(
        run_module, "plot_curves", lambda records, path, title, **kw: seen.update(title=title, **kw)
    )
    mlpmixer.create_model("mixer_t2_8", num_classes=3, hidden_dim=16, channels_mlp_dim=32,
                          tokens_mlp_dim=8, num_blocks=2).save(tmp_path / "pretrained")  # fmt: skip
    config = finetune_config(str(tmp_path / "pretrained"), "digits").override(
        [
            "train.steps=4",
            "train.batch_size=32",
            "train.threads=1",
            "run.progress=none",
            f"run.out={tmp_path / 'my-finetune'}",
        ]
    )
    train(config)
    assert seen["title"].startswith("my-finetune: fine-tune of ")
    assert len(seen["lr"]) == 4 and max(seen["lr"]) == pytest.approx(0.003)


def _folder(root, classes: int = 3, per_class: int = 30, side: int = 16):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def test_fine_tuning_a_small_folder_sizes_batch_and_steps_from_the_data(tmp_path, caplog):
    """Issue 27 item 7: the recipe's batch of 512 on a folder of 81 training images failed;
    like ``train``, fine-tuning sizes the batch (and the 10k steps) from the data, says so
    in one line, and the flags still win."""
    folder = str(_folder(tmp_path / "data"))
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        config = finetune_config("ckpt", folder)
    assert config.train.batch_size == 16  # a quarter of 81, as a power of two
    assert config.train.steps == 200 * (81 // 16)  # at most 200 epochs of the 10k steps
    line = next(
        r.getMessage() for r in caplog.records if "defaults from the data" in r.getMessage()
    )
    assert "(81 training images, 3 classes, images ~16 px): batch size 16, steps 1000" in line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        chosen = finetune_config("ckpt", folder, overrides=["train.batch_size=8", "train.steps=7"])
    assert (chosen.train.batch_size, chosen.train.steps) == (8, 7)
    assert "batch size 8, steps 7" in caplog.text
    assert finetune_config("ckpt", "cifar10").train.batch_size == 512  # a recipe's data set


def test_finetune_on_a_small_folder_runs_with_its_default_batch(tmp_path):
    from click.testing import CliRunner

    import mlpmixer
    from mlpmixer.cli import cli

    folder = _folder(tmp_path / "data")
    mlpmixer.create_model("mixer_t2_8", in_chans=3, num_classes=5).save(tmp_path / "ckpt")
    args = ["finetune", "--checkpoint", str(tmp_path / "ckpt"), "--dataset", str(folder),
            "--steps", "3", "--out", str(tmp_path / "run"), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert '"batch_size": 16' in result.stdout
