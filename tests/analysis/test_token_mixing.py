"""Token-mixing units on the patch grid: orientation, pairing, frequency order, figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mixer_testing import randomised
from mlpmixer import ConfigError, create_model
from mlpmixer.analysis.figures import save_figure, token_mixing_figure
from mlpmixer.analysis.token_mixing import (
    analyze_token_mixing,
    pair_opposite_units,
    radial_frequency,
    sorted_unit_order,
    spatial_spread,
    token_mixing_units,
)


def test_unit_images_are_laid_out_like_the_image():
    """Weight (r, c) of a unit multiplies the token the stem makes from patch row r, column c."""
    model = randomised(create_model("mixer_t2_8", img_size=(8, 12), num_blocks=2))
    units = token_mixing_units(model, 1)
    assert units.shape == (64, 4, 6)
    weight = model.blocks[1].token_mixing.fc1.weight.detach().double()
    with torch.no_grad():
        model.stem.proj.bias.zero_()
        for r, c in [(0, 0), (1, 4), (3, 5)]:
            image = torch.zeros(1, 1, 8, 12)
            image[0, 0, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 1.0
            token = model.stem(image)[0].abs().sum(1).argmax().item()
            np.testing.assert_array_equal(units[:, r, c], weight[:, token].numpy())


def test_opposite_units_are_paired_and_sorted_by_frequency():
    gy, gx = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    smooth = np.cos(2 * np.pi * gx / 6)  # one cycle across the grid
    medium = np.cos(2 * np.pi * 2 * (gx + gy) / 6)
    checker = (-1.0) ** (gx + gy)  # the highest frequency on the grid
    base = np.stack([checker, smooth, medium])
    rng = np.random.default_rng(0)
    units = np.concatenate([base, -base]) + 0.01 * rng.standard_normal((6, 6, 6))
    shuffle = rng.permutation(6)
    units = units[shuffle]
    pairs = pair_opposite_units(units)
    assert sorted(tuple(sorted(shuffle[list(p)] % 3)) for p in pairs) == [(0, 0), (1, 1), (2, 2)]
    order, sorted_pairs = sorted_unit_order(units)
    assert sorted(order) == list(range(6))
    kinds = [shuffle[a] % 3 for a, _ in sorted_pairs]
    assert kinds == [1, 2, 0]  # smooth, medium, checkerboard
    assert radial_frequency(checker[None])[0] == pytest.approx(np.hypot(0.5, 0.5))
    assert radial_frequency(smooth[None])[0] == pytest.approx(1 / 6)


def test_spread_separates_local_from_global_units():
    local = np.zeros((1, 8, 8))
    local[0, 3, 4] = 1.0
    flat = np.ones((1, 8, 8))
    assert spatial_spread(local)[0] == 0.0
    # uniform energy on an 8x8 grid: sqrt(2 * (64 - 1) / 12) / hypot(8, 8)
    assert spatial_spread(flat)[0] == pytest.approx(np.sqrt(2 * 63 / 12) / np.hypot(8, 8))


def test_analysis_and_figure(tmp_path):
    model = randomised(create_model("mixer_t2_8", num_blocks=3))
    blocks = analyze_token_mixing(model, [0, 2])
    assert [b.block for b in blocks] == [0, 2]
    first = blocks[0]
    assert first.images.shape == (64, 4, 4) and sorted(first.order) == list(range(64))
    np.testing.assert_array_equal(first.images[0], token_mixing_units(model, 0)[first.order[0]])
    summary = first.summary()
    assert "images" not in summary and len(summary["pair_correlation"]) == 32
    path = tmp_path / "tokens.png"
    save_figure(token_mixing_figure(blocks, max_units=16), path)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > png.height > 50
    with pytest.raises(ConfigError, match="block 3 does not exist"):
        token_mixing_units(model, 3)
