"""The training crop is big_vision's inception crop over the whole image (issue 15, item 1).

The reference is the crop's distribution written independently of the sampler, in continuous
form, and integrated numerically: the aspect ratio r ~ U(ratio), the crop height
h ~ U(sqrt(a0 H W / r), min(sqrt(a1 H W / r), W / r, H)), the width r h, and the left offset
uniform in [0, W - w). The sampler's Monte-Carlo frequencies must match it within a 4-sigma
binomial bound plus the discretisation slack of integer heights.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mlpmixer.data.folder import ImageFileDataset
from mlpmixer.data.transforms import sample_inception_crop, sample_rng

REPO = Path(__file__).resolve().parents[2]
H, W = 375, 500
AREA, RATIO = (0.05, 1.0), (0.75, 1.33)
SLACK = 0.006  # integer heights and float32 rounding vs the continuous reference


def _analytic_strip_probability(strip: int, side: str, grid: int = 1500) -> float:
    """P(the crop overlaps the border strip of width ``strip`` on ``side``), by quadrature."""
    total, weight = 0.0, 0.0
    for r in RATIO[0] + (np.arange(grid) + 0.5) / grid * (RATIO[1] - RATIO[0]):
        low = math.sqrt(AREA[0] * H * W / r)
        high = min(math.sqrt(AREA[1] * H * W / r), W / r, H)
        if low > high:  # this ratio fails; the sampler draws another
            continue
        h = low + (np.arange(grid) + 0.5) / grid * (high - low)
        extent = h * r if side == "left" else h  # the crop's side across the strip
        full = W if side == "left" else H
        free = full - extent
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(free > 0.5, np.minimum(1.0, strip / free), 1.0)
        total += p.mean()
        weight += 1.0
    return total / weight


def _analytic_mean_area(grid: int = 1500) -> float:
    areas = []
    for r in RATIO[0] + (np.arange(grid) + 0.5) / grid * (RATIO[1] - RATIO[0]):
        low = math.sqrt(AREA[0] * H * W / r)
        high = min(math.sqrt(AREA[1] * H * W / r), W / r, H)
        h = low + (np.arange(grid) + 0.5) / grid * (high - low)
        areas.append((r * h * h / (H * W)).mean())
    return float(np.mean(areas))


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(1234)
    return np.array([sample_inception_crop(H, W, rng, AREA, RATIO) for _ in range(20_000)])


def _bound(p: float, n: int) -> float:
    return 4.0 * math.sqrt(max(p * (1.0 - p), 1e-4) / n) + SLACK


@pytest.mark.parametrize("strip", [10, 60, 120])
@pytest.mark.parametrize("side", ["left", "top"])
def test_border_strip_coverage_matches_the_analytic_distribution(crops, strip, side):
    top, left = crops[:, 0], crops[:, 1]
    hits = (left < strip) if side == "left" else (top < strip)
    expected = _analytic_strip_probability(strip, side)
    assert abs(hits.mean() - expected) < _bound(expected, len(crops)), (hits.mean(), expected)


def test_right_and_bottom_strips_are_reached_too(crops):
    """The crop covers the whole image, not the centre square: the far strips are hit as
    often as TF's offsets in [0, side - crop) allow."""
    top, left, h, w = crops.T
    right = (left + w > W - 60).mean()
    bottom = (top + h > H - 60).mean()
    for got, side in ((right, "left"), (bottom, "top")):
        expected = _analytic_strip_probability(59, side)  # offsets stop one pixel short
        assert expected > 0.2
        assert abs(got - expected) < _bound(expected, len(crops)), (side, got, expected)


def test_area_and_ratio_stay_in_range_and_match_the_mean(crops):
    _, _, h, w = crops.T
    area = h * w / (H * W)
    assert area.min() >= AREA[0] - 1e-3 and area.max() <= AREA[1]
    ratio = w / h
    assert ratio.min() >= RATIO[0] - 0.02 and ratio.max() <= RATIO[1] + 0.02
    assert abs(area.mean() - _analytic_mean_area()) < 0.01


def test_fallback_is_the_whole_image_when_no_attempt_fits():
    # a 1000 x 10 strip cannot hold a crop of ratio 0.75-1.33 and area >= 50%
    assert sample_inception_crop(10, 1000, np.random.default_rng(0), (0.5, 1.0)) == (0, 0, 10, 1000)


def test_the_imagenet_recipe_uses_big_vision_parameters():
    augment = yaml.safe_load((REPO / "configs" / "imagenet1k_b16.yaml").read_text())["augment"]
    assert augment["crop_scale"] == [0.05, 1.0] and augment["crop_ratio"] == [0.75, 1.33]
    assert (augment["randaugment_n"], augment["randaugment_m"]) == (2, 15.0)


def _striped_png(path: Path) -> None:
    """500 x 375 grey image with pure red 60-px stripes along the left and right edges."""
    array = np.full((H, W, 3), 128, np.uint8)
    array[:, :60] = (255, 0, 0)
    array[:, -60:] = (255, 0, 0)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())


def test_training_samples_of_an_image_folder_contain_the_edge_stripes(tmp_path):
    """The issue's reproduction: with the recipe's crop the worker output held 0 stripe
    pixels in 256 crops; now the share of crops showing a stripe is the analytic one."""
    from mlpmixer.train.augment import sample_augment
    from mlpmixer.train.config import AugmentSection

    path = tmp_path / "striped.png"
    _striped_png(path)
    data = ImageFileDataset([path], [0], 3, (64, 64))
    cfg = AugmentSection(random_resized_crop=True, crop_scale=AREA, crop_ratio=RATIO)
    data.set_train_augment(sample_augment(cfg), seed=0)
    n = 256
    red = [data[(epoch, 0)][0] for epoch in range(n)]  # one image, 256 epochs
    shows = np.array([((x[0] > 200) & (x[1] < 60)).any().item() for x in red])
    # a crop shows a stripe when it overlaps the left or the right one
    p_left = _analytic_strip_probability(60, "left")
    assert shows.mean() > p_left  # at least the left stripe's share, and never the old 0
    assert shows.mean() > 0.4
    assert sample_rng(0, 1, 0).random() != sample_rng(0, 2, 0).random()  # epochs differ
