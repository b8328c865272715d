"""RandAugment: big_vision's op list and magnitude scale (issue 15, item 1).

Each op's magnitude -> parameter mapping is checked against the table in docs/training.md
(so the documentation cannot drift), and the pixels of several ops against independent NumPy
computations of the TF AutoAugment definitions.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from mlpmixer.data.randaugment import OPS, apply_op, op_parameter, randaugment, warp

DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def _doc_table() -> dict[str, tuple[str, str]]:
    """op -> (value at M = 10, value at M = 15) from the RandAugment table of the docs."""
    text = DOCS.read_text()
    table = text[text.index("| op | parameter at magnitude M | M = 10 | M = 15 |") :]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = (cells[2], cells[3])
    return rows


def _number(cell: str) -> float | None:
    return None if cell == "—" else float(cell.lstrip("±"))


def test_the_docs_table_lists_exactly_the_sixteen_ops():
    assert sorted(_doc_table()) == sorted(OPS)
    assert len(OPS) == 16


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("column, magnitude", [(0, 10.0), (1, 15.0)])
def test_magnitude_to_parameter_matches_the_docs_table(name, column, magnitude):
    cell = _doc_table()[name][column]
    value = op_parameter(name, magnitude)
    if name == "Cutout":  # the table gives the square's side, 2 x the parameter
        value = 2 * value
    expected = _number(cell)
    assert (value is None) == (expected is None)
    if expected is not None:
        assert math.isclose(value, expected, rel_tol=1e-9), (name, magnitude, value, cell)
    if cell.startswith("±"):
        assert op_parameter(name, magnitude, negate=True) == -op_parameter(name, magnitude)


def test_the_scale_is_tfs_not_kornias():
    """The issue: m = 15 rotated by +-15 degrees (kornia's 0..30 scale); big_vision: 45."""
    assert op_parameter("Rotate", 15) == pytest.approx(45.0)
    assert op_parameter("TranslateX", 15) == pytest.approx(150.0)
    assert op_parameter("Posterize", 15) == 6
    for level in range(0, 21):  # independent formulas, every integer magnitude
        assert op_parameter("Solarize", level) == int(level / 10 * 256)
        assert op_parameter("SolarizeAdd", level) == int(level / 10 * 110)
        assert op_parameter("Color", level) == pytest.approx(level / 10 * 1.8 + 0.1)
        assert op_parameter("ShearY", level) == pytest.approx(level / 10 * 0.3)


# --- pixels against NumPy ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 224 x 224 RGB test image with smooth structure and noise (all 256 levels occur)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:224, 0:224].astype(np.float32)
    base = np.stack([np.sin(x / 17.0), np.cos(y / 23.0), np.sin((x + y) / 31.0)], -1) * 90 + 120
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def _apply(name: str, array: np.ndarray, magnitude: float = 15.0) -> np.ndarray:
    return apply_op(name, array, magnitude, np.random.default_rng(0))


def _tf_blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
    low = degenerate.astype(np.float32)
    out = low + np.float32(factor) * (image.astype(np.float32) - low)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_invert_posterize_solarize(image):
    assert np.array_equal(_apply("Invert", image), 255 - image)
    assert np.array_equal(_apply("Posterize", image), image & 0b11111100)  # 6 bits at M=15
    assert np.array_equal(_apply("Solarize", image, 5.0), np.where(image < 128, image, 255 - image))
    # TF wraps the threshold to uint8: 384 -> 128 at M = 15, 256 -> 0 (all inverted) at M = 10
    assert np.array_equal(_apply("Solarize", image, 15.0), _apply("Solarize", image, 5.0))
    assert np.array_equal(_apply("Solarize", image, 10.0), 255 - image)
    assert np.array_equal(_apply("Posterize", image, 0.0), image & 0b10000000)  # shift 8 -> 7
    added = np.minimum(image.astype(int) + 165, 255).astype(np.uint8)
    assert np.array_equal(_apply("SolarizeAdd", image), np.where(image < 128, added, image))


def test_brightness_contrast_color_as_tf(image):
    f = 2.8
    assert np.array_equal(_apply("Brightness", image), _tf_blend(np.zeros_like(image), image, f))
    grey = np.full_like(image, min(255, 224 * 224 // 256))  # TF: pixel count / 256 = 196
    assert np.array_equal(_apply("Contrast", image), _tf_blend(grey, image, f))
    flt = image.astype(np.float32) / np.float32(255.0)
    gray = np.tensordot(flt, np.array([0.2989, 0.5870, 0.1140], np.float32), axes=([-1], [-1]))
    gray = (gray * np.float32(255.5)).astype(np.uint8)
    got = _apply("Color", image)
    want = _tf_blend(np.repeat(gray[..., None], 3, axis=2), image, f)
    assert np.abs(got.astype(int) - want).max() <= 1  # float32 summation order only
    assert (got != want).mean() < 1e-3


def test_sharpness_as_tf(image):
    x = image.astype(np.float32)
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
    smooth = np.zeros_like(x[1:-1, 1:-1])
    for i in range(3):
        for j in range(3):
            smooth += kernel[i, j] * x[i : 222 + i, j : 222 + j]
    degenerate = image.copy()
    degenerate[1:-1, 1:-1] = np.clip(smooth, 0, 255).astype(np.uint8)
    want = _tf_blend(degenerate, image, 2.8)
    got = _apply("Sharpness", image)
    # float32 weights of 1/13 can land just below an exact integer k (TF's own result then
    # depends on its summation order); elsewhere the results are identical
    total = sum(x[i : 222 + i, j : 222 + j] for i in range(3) for j in range(3)) + 4 * x[1:-1, 1:-1]
    exact_multiple = np.zeros(image.shape, bool)
    exact_multiple[1:-1, 1:-1] = total % 13 == 0
    differ = got != want
    assert not (differ & ~exact_multiple).any()
    assert np.abs(got.astype(int) - want).max() <= 2  # one grey level, times the factor 2.8


def test_autocontrast_and_equalize_as_pil(image):
    """The TF code implements PIL's ImageOps.autocontrast and equalize: PIL is the reference."""
    low = image // 2 + 40  # a narrow range, so autocontrast has something to do
    want = np.asarray(ImageOps.autocontrast(Image.fromarray(low)))
    assert np.abs(_apply("AutoContrast", low).astype(int) - want).max() <= 1  # float32 vs double
    assert np.array_equal(
        _apply("Equalize", image), np.asarray(ImageOps.equalize(Image.fromarray(image)))
    )
    flat = np.full_like(image, 77)  # one value per channel: both leave it alone
    assert np.array_equal(_apply("Equalize", flat), flat)
    assert np.array_equal(_apply("AutoContrast", flat), flat)


def _tf_warp(array: np.ndarray, matrix: tuple[float, ...]) -> np.ndarray:
    """TF's projective transform, nearest: output (x, y) <- input round(a x + b y + c, ...)."""
    a, b, c, d, e, f = matrix
    h, w = array.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c, d, e, f = (np.float32(v) for v in matrix)

    def std_round(v: np.ndarray) -> np.ndarray:  # C++ std::round: halves away from zero
        return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(int)

    sx, sy = std_round(a * x + b * y + c), std_round(d * x + e * y + f)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    out = np.full_like(array, 128)
    out[inside] = array[sy[inside], sx[inside]]
    return out


@pytest.mark.parametrize(
    "name, value",
    [("Rotate", 45.0), ("Rotate", -45.0), ("ShearX", 0.45), ("ShearY", -0.45),
     ("TranslateX", 150.0), ("TranslateY", -150.0)],
)  # fmt: skip
def test_geometric_ops_map_pixels_as_tf(image, name, value):
    h, w = image.shape[0] - 1.0, image.shape[1] - 1.0
    t = math.radians(value)
    matrices = {
        "Rotate": (math.cos(t), -math.sin(t), (w - (math.cos(t) * w - math.sin(t) * h)) / 2,
                   math.sin(t), math.cos(t), (h - (math.sin(t) * w + math.cos(t) * h)) / 2),
        "ShearX": (1, value, 0, 0, 1, 0), "ShearY": (1, 0, 0, value, 1, 0),
        "TranslateX": (1, 0, value, 0, 1, 0), "TranslateY": (1, 0, 0, 0, 1, value),
    }  # fmt: skip
    want = _tf_warp(image, matrices[name])
    got = warp(name, image, value)
    same = (got == want).all(axis=-1)
    assert same.mean() > 0.99, same.mean()  # only source points within 1/2 px outside differ
    grey = (want == 128).all(-1)
    assert abs((got == 128).all(-1).mean() - grey.mean()) < 0.01  # the uncovered area


def test_cutout_is_a_grey_square_of_the_tabled_side(image):
    got = _apply("Cutout", image)
    grey = (got == 128).all(-1) & ~(image == 128).all(-1)
    rows, cols = np.nonzero(grey)
    assert rows.max() - rows.min() + 1 <= 120 and cols.max() - cols.min() + 1 <= 120
    rng = np.random.default_rng(0)
    cy, cx = int(rng.integers(0, 224)), int(rng.integers(0, 224))
    assert grey[cy, cx]


def test_randaugment_picks_ops_uniformly_and_signs_evenly():
    counts = dict.fromkeys(OPS, 0)
    picks = []

    class Recorder:
        def __init__(self, rng):
            self.rng = rng

        def integers(self, low, high):
            value = self.rng.integers(low, high)
            if (low, high) == (0, len(OPS)):
                picks.append(OPS[int(value)])
            return value

        def random(self, *args, **kwargs):
            return self.rng.random(*args, **kwargs)

    tiny = np.full((8, 8, 3), 100, np.uint8)
    randaugment(tiny, 2, 15, Recorder(np.random.default_rng(3)))  # type: ignore[arg-type]
    assert len(picks) == 2
    rng = np.random.default_rng(5)
    for _ in range(3200):
        counts[OPS[int(rng.integers(0, len(OPS)))]] += 1
    assert all(abs(n - 200) < 4 * math.sqrt(200) for n in counts.values())


def test_magnitude_docs_mention_the_scale():
    text = DOCS.read_text()
    assert re.search(r"randaug\(2, 15\)` rotates by ±45°", text)
