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
Solarize        threshold int(256 M/10)               384 (no pixel changes)
SolarizeAdd     +int(110 M/10) below 128              +165
Color           factor 1.8 M/10 + 0.1                 2.8
Contrast        factor 1.8 M/10 + 0.1                 2.8
Brightness      factor 1.8 M/10 + 0.1                 2.8
Sharpness       factor 1.8 M/10 + 0.1                 2.8
ShearX, ShearY  +-0.3 M/10                            +-0.45
TranslateX/Y    +-100 M/10 pixels                     +-150 pixels
Cutout          grey square of side 2 int(40 M/10)    120 pixels
==============  ====================================  =====================

Semantics follow that code, quirks included, because the paper's numbers were obtained with
it: the blend ops truncate to uint8; Contrast blends towards a constant grey of
``min(255, pixels / 256)`` (the TF code divides the histogram's *count* by 256, not its
weighted sum); Color's grey is TF's ``rgb_to_grayscale`` (weights 0.2989, 0.5870, 0.1140);
Sharpness blends with the 3x3 smoothing (1 1 1 / 1 5 1 / 1 1 1)/13, border pixels kept;
Posterize keeps at most 8 bits (magnitudes above 20 do nothing more). Geometric ops use PIL's
nearest-neighbour affine warps with TF's pixel mapping; where a source point lies within half
a pixel outside the image, PIL fills grey and TF repeats the edge pixel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from PIL import Image

MAX_LEVEL = 10.0
FILL = (128, 128, 128)
_TIE = 2.0**-9  # see _affine (PIL warps nearest in 16.16 fixed point)
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


def sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the 3x3 smoothing (1 1 1 / 1 5 1 / 1 1 1) / 13 truncated to uint8, border
    pixels kept. The sums are integers, so integer division equals TF's float32 division and
    truncation, except where TF's own float sum falls a hair below an exact multiple of 13."""
    x = image.astype(np.uint16)
    rows = x[:, :-2] + x[:, 1:-1]  # separable 3x3 box sum, in place where possible
    rows += x[:, 2:]
    total = rows[:-2] + rows[1:-1]
    total += rows[2:]
    total += x[1:-1, 1:-1] * np.uint16(4)  # the centre's weight is 5
    degenerate = image.copy()
    degenerate[1:-1, 1:-1] = total // 13
    return blend(degenerate, image, factor)


def solarize_add(image: np.ndarray, addition: int, threshold: int = 128) -> np.ndarray:
    values = np.arange(256)
    table = np.where(values < threshold, np.clip(values + addition, 0, 255), values)
    return _lookup(image, table.astype(np.uint8))


def solarize(image: np.ndarray, threshold: int) -> np.ndarray:
    values = np.arange(256)
    return _lookup(image, np.where(values < threshold, values, 255 - values).astype(np.uint8))


def posterize(image: np.ndarray, bits: int) -> np.ndarray:
    """Keep the ``bits`` high bits (at most 8: TF's shift by 8 - bits)."""
    shift = 8 - max(0, min(8, bits))
    return (image >> shift) << shift if shift < 8 else np.zeros_like(image)


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


# --- geometric ops on PIL images (nearest neighbour, TF's pixel mapping) -------------------------


def _affine(
    image: Image.Image, a: float, b: float, c: float, d: float, e: float, f: float
) -> Image.Image:
    """Output pixel (x, y) takes input pixel round(a x + b y + c, d x + e y + f) (TF's map, in
    pixel indices); PIL maps pixel centres, hence the half-pixel terms, and truncates, hence
    the nudge that rounds exact halves up as C++'s ``std::round`` does (TF computes them in
    float32, where e.g. 0.45 x 10 is exactly 4.5; in double it is a hair below)."""
    c_pil = c - 0.5 * (a + b - 1.0) + _TIE
    f_pil = f - 0.5 * (d + e - 1.0) + _TIE
    data = (a, b, c_pil, d, e, f_pil)
    return image.transform(
        image.size, Image.Transform.AFFINE, data, Image.Resampling.NEAREST, fillcolor=FILL
    )


def warp(name: str, array: np.ndarray, value: float) -> np.ndarray:
    """Geometric op ``name`` (Rotate, ShearX/Y, TranslateX/Y) with its signed parameter."""
    h, w = array.shape[:2]
    image = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(array), "raw", "RGB", 0, 1)
    return np.asarray(_warp_pil(name, image, value))


def _warp_pil(name: str, image: Image.Image, value: float) -> Image.Image:
    if name == "Rotate":  # tfa's rotate: about the centre ((w - 1) / 2, (h - 1) / 2)
        cos, sin = math.cos(math.radians(value)), math.sin(math.radians(value))
        w, h = image.width - 1.0, image.height - 1.0
        x_off, y_off = (w - (cos * w - sin * h)) / 2.0, (h - (sin * w + cos * h)) / 2.0
        return _affine(image, cos, -sin, x_off, sin, cos, y_off)
    if name == "ShearX":
        return _affine(image, 1.0, value, 0.0, 0.0, 1.0, 0.0)
    if name == "ShearY":
        return _affine(image, 1.0, 0.0, 0.0, value, 1.0, 0.0)
    if name == "TranslateX":
        return _affine(image, 1.0, 0.0, value, 0.0, 1.0, 0.0)
    return _affine(image, 1.0, 0.0, 0.0, 0.0, 1.0, value)  # TranslateY


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
