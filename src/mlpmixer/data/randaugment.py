"""RandAugment on uint8 RGB images, with big_vision's op list and magnitude scale.

big_vision's ``randaug(N, M)`` (the TF AutoAugment code it carries) applies N ops, each
chosen uniformly among the 16 of `OPS`, at the fixed magnitude M; an op's parameter is
``M / MAX_LEVEL`` (``MAX_LEVEL = 10``) times the op's range below, with a random sign for the
geometric ones; pixels a geometric op uncovers are grey (128). `op_parameter` gives the
mapping and docs/training.md its table:

==============  ====================================  =====================
op              parameter at magnitude M              at M = 15
==============  ====================================  =====================
AutoContrast    none                                  -
Equalize        none                                  -
Invert          none                                  -
Rotate          +-30 M/10 degrees                     +-45 degrees
Posterize       int(4 M/10) bits kept                 6 bits
Solarize        threshold int(256 M/10) mod 256       128 (384 mod 256)
SolarizeAdd     +int(110 M/10) below 128              +165
Color           factor 1.8 M/10 + 0.1                 2.8
Contrast        factor 1.8 M/10 + 0.1                 2.8
Brightness      factor 1.8 M/10 + 0.1                 2.8
Sharpness       factor 1.8 M/10 + 0.1                 2.8
ShearX, ShearY  +-0.3 M/10                            +-0.45
TranslateX/Y    +-100 M/10 pixels                     +-150 pixels
Cutout          grey square of side 2 int(40 M/10)    120 pixels
==============  ====================================  =====================

Semantics follow that code under TensorFlow, quirks included, because the paper's numbers were
obtained with it, and tests/data/test_bigvision_goldens.py checks every op at magnitudes 0, 3,
5, 10, 15 and 20 bit for bit against outputs of big_vision's own ops under TF 2.21
(benchmarks/bigvision_goldens.py makes them): the blend ops truncate to uint8; Contrast blends
towards a constant grey of ``min(255, pixels / 256)`` (the TF code divides the histogram's
*count* by 256, not its weighted sum); Color's grey is TF's ``rgb_to_grayscale`` (weights
0.2989, 0.5870, 0.1140); Sharpness blends with the 3x3 smoothing (1 1 1 / 1 5 1 / 1 1 1)/13 in
float32 with fused multiply-adds (oneDNN's kernel, TF's default on x86; with
``TF_ENABLE_ONEDNN_OPTS=0`` TF itself gives 1 grey level less on about 0.7% of pixel values),
border pixels kept; Solarize's threshold wraps modulo 256 (TF converts the Python number to
uint8: M = 10 gives 256 -> 0, every pixel inverted; M = 15 gives 384 -> 128); Posterize's shift
``8 - bits`` is clamped to 7 as TF's shifts are (M = 0 keeps the top bit). Geometric ops are
``ImageProjectiveTransformV2`` nearest-neighbour warps: the source point computed in float32,
rounded half away from zero, grey where the rounded point is outside.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

MAX_LEVEL = 10.0
FILL = (128, 128, 128)
OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
    "Cutout", "SolarizeAdd",
)  # fmt: skip
_SIGNED_RANGE = {
    "Rotate": 30.0,
    "ShearX": 0.3,
    "ShearY": 0.3,
    "TranslateX": 100.0,
    "TranslateY": 100.0,
}
_INT_RANGE = {"Posterize": 4.0, "Solarize": 256.0, "SolarizeAdd": 110.0, "Cutout": 40.0}
_ENHANCE = ("Color", "Contrast", "Brightness", "Sharpness")
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)  # tf.image.rgb_to_grayscale


def op_parameter(name: str, magnitude: float, negate: bool = False) -> float | int | None:
    """The parameter of op ``name`` at ``magnitude`` (``negate``: the random sign drew minus)."""
    level = magnitude / MAX_LEVEL
    if name in _SIGNED_RANGE:
        value = level * _SIGNED_RANGE[name]
        return -value if negate else value
    if name in _INT_RANGE:
        return int(level * _INT_RANGE[name])
    if name in _ENHANCE:
        return level * 1.8 + 0.1
    if name in OPS:
        return None
    raise KeyError(f"unknown RandAugment op {name!r}; ops: {', '.join(OPS)}")


# --- pixel ops on (H, W, 3) uint8 arrays ---------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _blend_table(factor: float) -> np.ndarray:
    """(256 * 256,) uint8: entry 256 a + b = blend of pixel values a (degenerate), b (image)."""
    low = np.arange(256, dtype=np.float32)[:, None]
    high = np.arange(256, dtype=np.float32)[None, :]
    mixed = low + np.float32(factor) * (high - low)
    return np.clip(mixed, 0.0, 255.0).astype(np.uint8).ravel()


def blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
    """TF's blend: ``degenerate + factor (image - degenerate)`` in float32, clipped to
    [0, 255], truncated to uint8 (a table lookup per pixel pair: the same numbers, faster)."""
    if factor == 0.0:
        return degenerate
    if factor == 1.0:
        return image
    keys = (degenerate.astype(np.uint16) << 8) | image
    return np.take(_blend_table(float(factor)), keys)


def tf_grayscale(image: np.ndarray) -> np.ndarray:
    """TF's ``rgb_to_grayscale`` of uint8: (H, W, 3) -> (H, W) uint8 (x/255, weights, x 255.5)."""
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    w = GRAY_WEIGHTS
    gray = x[..., 0] * w[0] + x[..., 1] * w[1] + x[..., 2] * w[2]
    return (gray * np.float32(255.5)).astype(np.uint8)


def color(image: np.ndarray, factor: float) -> np.ndarray:
    return blend(tf_grayscale(image)[..., None], image, factor)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """TF's contrast: blend towards min(255, pixels / 256) (the histogram's count / 256)."""
    grey = int(min(255.0, image.shape[0] * image.shape[1] / 256.0))
    return _lookup(image, _constant_blend(grey, factor))


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    return _lookup(image, _constant_blend(0, factor))


def _constant_blend(grey: int, factor: float) -> np.ndarray:
    """(256,) uint8: `blend` of every pixel value with a constant degenerate ``grey``."""
    if factor == 0.0:
        return np.full(256, grey, np.uint8)
    return _blend_table(float(factor))[grey * 256 : (grey + 1) * 256]


def _lookup(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-pixel table lookup (NumPy: PIL's ``point`` rounds its table in Python per call)."""
    return np.take(table, image)


_SMOOTH = np.array([1, 1, 1, 1, 5, 1, 1, 1, 1], np.float32) / np.float32(13.0)


def _smooth_float(neighbours: np.ndarray) -> np.ndarray:
    """TF's (oneDNN's) float32 3x3 smoothing of (n, 9) pixel neighbourhoods (row-major): a
    fused multiply-add per tap in that order, each rounded once to float32 (emulated in
    float64, where every product and sum here is exact); truncated to uint8."""
    products = neighbours * _SMOOTH.astype(np.float64)  # (n, 9), exact
    total = products[:, 0]
    for tap in range(1, 9):
        total = total.astype(np.float32) + products[:, tap]  # float64: exact, rounded next
    return np.clip(total.astype(np.float32), 0.0, 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _smooth_flat() -> np.ndarray:
    """(256,) uint8: `_smooth_float` of a flat neighbourhood of each value (sum 13 v)."""
    return _smooth_float(np.repeat(np.arange(256, dtype=np.float64)[:, None], 9, axis=1))


def sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with TF's 3x3 smoothing (1 1 1 / 1 5 1 / 1 1 1) / 13 truncated to uint8, border
    pixels kept. The weighted sums S are integers: TF's float32 result truncates to S // 13
    except where S is a multiple of 13, where rounding can leave it a hair below S / 13; only
    those pixels are recomputed as TF's float arithmetic does: flat neighbourhoods (common in
    photographs) from a table of the 256 values, the others by `_smooth_float`."""
    h, w, c = image.shape
    x = image.astype(np.uint16)
    rows = x[:, :-2] + x[:, 1:-1]  # separable 3x3 box sum, in place where possible
    rows += x[:, 2:]
    total = rows[:-2] + rows[1:-1]
    total += rows[2:]
    total += x[1:-1, 1:-1] * np.uint16(4)  # the centre's weight is 5
    inner = (total // 13).astype(np.uint8)
    centre = image[1:-1, 1:-1]
    flat = np.ones(centre.shape, bool)
    for dy in range(3):
        for dx in range(3):
            if (dy, dx) != (1, 1):
                flat &= image[dy : h - 2 + dy, dx : w - 2 + dx] == centre
    multiple = total == inner * np.uint16(13)
    multiple &= ~flat
    flat_at = np.flatnonzero(flat)
    if flat_at.size:
        inner.reshape(-1)[flat_at] = np.take(_smooth_flat(), centre.reshape(-1)[flat_at])
    where = np.flatnonzero(multiple)  # in the (h - 2, w - 2, c) inner block
    if where.size:
        row, rest = np.divmod(where, (w - 2) * c)  # rest = x c + channel
        corner = row * (w * c) + rest  # the neighbourhood's top-left tap in the image
        offsets = np.array([(dy * w + dx) * c for dy in range(3) for dx in range(3)])
        taps = np.take(image.reshape(-1), corner[:, None] + offsets)  # (n, 9) uint8
        inner.reshape(-1)[where] = _smooth_float(taps.astype(np.float64))
    degenerate = image.copy()
    degenerate[1:-1, 1:-1] = inner
    return blend(degenerate, image, factor)


def solarize_add(image: np.ndarray, addition: int, threshold: int = 128) -> np.ndarray:
    values = np.arange(256)
    table = np.where(values < threshold, np.clip(values + addition, 0, 255), values)
    return _lookup(image, table.astype(np.uint8))


def solarize(image: np.ndarray, threshold: int) -> np.ndarray:
    """Invert the pixels at or above ``threshold`` modulo 256: TF compares the uint8 image
    with the Python number converted to uint8, which wraps (256 -> 0: every pixel inverted;
    384 -> 128), and the paper's magnitudes 10 and 15 give exactly those thresholds."""
    values = np.arange(256)
    wrapped = int(threshold) % 256
    return _lookup(image, np.where(values < wrapped, values, 255 - values).astype(np.uint8))


def posterize(image: np.ndarray, bits: int) -> np.ndarray:
    """Keep the ``bits`` high bits: shift right then left by ``8 - bits``, which TF's bitwise
    shifts clamp to [0, 7] (so 0 bits keeps the top one, as 1 bit does)."""
    shift = np.uint8(min(7, max(0, 8 - int(bits))))
    return (image >> shift) << shift


def autocontrast(image: np.ndarray) -> np.ndarray:
    """Per channel: stretch [min, max] to [0, 255] in float32, truncated (TF's, as PIL's)."""
    out = image.copy()
    for c in range(image.shape[2]):
        low, high = float(image[..., c].min()), float(image[..., c].max())
        if high > low:
            scale = np.float32(255.0 / (high - low))
            values = np.arange(256, dtype=np.float32) * scale - np.float32(low) * scale
            out[..., c] = np.take(np.clip(values, 0, 255).astype(np.uint8), image[..., c])
    return out


def equalize(image: np.ndarray) -> np.ndarray:
    """Per channel histogram equalisation, PIL's algorithm as TF writes it."""
    out = image.copy()
    for c in range(image.shape[2]):
        histogram = np.bincount(image[..., c].ravel(), minlength=256)
        used = histogram[histogram > 0]
        step = (int(used.sum()) - int(used[-1])) // 255
        if step == 0:
            continue
        table = (np.cumsum(histogram) + step // 2) // step
        table = np.clip(np.concatenate([[0], table[:-1]]), 0, 255).astype(np.uint8)
        out[..., c] = np.take(table, image[..., c])
    return out


def cutout(image: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    out = image.copy()
    out[max(0, cy - pad) : min(h, cy + pad), max(0, cx - pad) : min(w, cx + pad)] = FILL
    return out


# --- geometric ops: TF's ImageProjectiveTransformV2, nearest neighbour, as index maps ---------


def _matrix(name: str, value: float, height: int, width: int) -> tuple[np.float32, ...]:
    """(a, b, c, d, e, f): output pixel (x, y) reads input (a x + b y + c, d x + e y + f),
    every number float32 as TF holds it (the parameter is a float32 tensor; tfa's rotation
    matrix, about ((w - 1) / 2, (h - 1) / 2), is built from float32 tensor ops)."""
    f32, one, zero = np.float32, np.float32(1.0), np.float32(0.0)
    v = f32(value)
    if name == "Rotate":
        radians = f32(v * f32(math.pi / 180.0))
        cos, sin = f32(math.cos(float(radians))), f32(math.sin(float(radians)))
        w, h = f32(width) - one, f32(height) - one
        x_off = (w - (cos * w - sin * h)) / f32(2.0)
        y_off = (h - (sin * w + cos * h)) / f32(2.0)
        return cos, -sin, x_off, sin, cos, y_off
    if name == "ShearX":
        return one, v, zero, zero, one, zero
    if name == "ShearY":
        return one, zero, zero, v, one, zero
    if name == "TranslateX":  # tfa's translate by -pixels: the matrix's offset is +pixels
        return one, zero, v, zero, one, zero
    return one, zero, zero, zero, one, v  # TranslateY


def _round_half_away(values: np.ndarray) -> np.ndarray:
    """C++'s ``std::round`` (halves away from zero) of float32 values, as int64."""
    wide = values.astype(np.float64)  # exact; adding 0.5 in float32 could round up
    return np.where(wide >= 0, np.floor(wide + 0.5), np.ceil(wide - 0.5)).astype(np.int64)


@functools.lru_cache(maxsize=64)
def _source_index(name: str, value: float, height: int, width: int) -> np.ndarray:
    """(H * W,) int32: for each output pixel the flat index of the input pixel it takes, or
    ``H * W`` (the grey fill) where that lies outside. TF computes the source point in float32
    (``a x + b y + c``, no fused multiply-add), rounds it half away from zero and fills only
    where the *rounded* point is outside, so points up to half a pixel out take the edge."""
    a, b, c, d, e, f = _matrix(name, value, height, width)
    y, x = np.mgrid[:height, :width].astype(np.float32)
    src_x = _round_half_away((a * x + b * y) + c)
    src_y = _round_half_away((d * x + e * y) + f)
    inside = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    index = np.where(inside, src_y * width + src_x, height * width)
    return index.ravel().astype(np.int32)  # 0.2 MB at 224 x 224, up to 64 cached per worker


def warp(name: str, array: np.ndarray, value: float) -> np.ndarray:
    """Geometric op ``name`` (Rotate, ShearX/Y, TranslateX/Y) with its signed parameter on
    (H, W, 3) uint8; uncovered pixels grey (128). The index map is cached: a recipe has one
    magnitude, so each op sees two parameters (the two signs) per image size."""
    h, w = array.shape[:2]
    pixels = np.concatenate([array.reshape(h * w, 3), np.array([FILL], np.uint8)])
    return np.take(pixels, _source_index(name, float(value), h, w), axis=0).reshape(h, w, 3)


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "AutoContrast": lambda image, _: autocontrast(image),
    "Equalize": lambda image, _: equalize(image),
    "Invert": lambda image, _: 255 - image,
    "Posterize": lambda image, bits: posterize(image, int(bits)),
    "Solarize": lambda image, threshold: solarize(image, int(threshold)),
    "SolarizeAdd": lambda image, addition: solarize_add(image, int(addition)),
    "Color": color,
    "Contrast": contrast,
    "Brightness": brightness,
    "Sharpness": sharpness,
}


def apply_op(
    name: str, image: np.ndarray, magnitude: float, rng: np.random.Generator
) -> np.ndarray:
    """One op at ``magnitude`` on (H, W, 3) uint8 (draws its sign or position from ``rng``)."""
    if name in _SIGNED_RANGE:  # TF's _randomly_negate_tensor: floor(u + 0.5) decides
        return warp(name, image, op_parameter(name, magnitude, rng.random() < 0.5))  # type: ignore[arg-type]
    value = op_parameter(name, magnitude)
    if name == "Cutout":
        return cutout(image, value, rng)  # type: ignore[arg-type]
    return _OPS[name](image, value)  # type: ignore[arg-type]


def randaugment(
    image: np.ndarray, num_layers: int, magnitude: float, rng: np.random.Generator
) -> np.ndarray:
    """big_vision's ``randaug(num_layers, magnitude)`` on (H, W, 3) uint8 pixels."""
    for _ in range(num_layers):
        image = apply_op(OPS[int(rng.integers(0, len(OPS)))], image, magnitude, rng)
    return image
