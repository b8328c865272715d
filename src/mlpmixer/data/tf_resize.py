"""TensorFlow's image resizes on uint8, bit for bit: the two big_vision's recipes use.

* `area_resize`: ``tf.image.resize(..., method="area")`` (TF's ``ResizeArea`` kernel, no
  antialiasing option involved), which big_vision's ``resize_small`` uses for evaluation;
* `bilinear_resize`: ``tf.image.resize(..., method="bilinear", antialias=False)`` (half-pixel
  centres, the four nearest pixels), which ``decode_jpeg_and_inception_crop`` uses for training.

Both give float32 in TF; big_vision clips to [0, 255] and casts to uint8, which truncates, and
so do these. The float32 arithmetic is TF's, operation by operation and in its order (float32
rounding after every step, no fused multiply-adds), vectorised over whole rows and columns with
NumPy; tests/data/test_bigvision_goldens.py checks the results against TF's. Images are
(H, W, C) uint8; only the output pixels inside ``rows`` x ``cols`` are computed, so a centre
crop after the resize costs only the pixels it keeps.
"""

from __future__ import annotations

import functools

import numpy as np

F32 = np.float32


def _scale(in_size: int, out_size: int) -> np.float32:
    """TF's ``CalculateResizeScale`` without align_corners: in / out in float32."""
    return F32(in_size) / F32(out_size)


@functools.lru_cache(maxsize=256)
def _area_taps(in_size: int, out_size: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """For outputs ``start..stop-1`` of an ``in_size -> out_size`` area resize: (n, K) input
    indices and (n, K) float32 weights, in TF's summation order (first cell weighted by the
    part of it covered, whole cells 1, the last cell by its part; 0 pads to K taps)."""
    scale = _scale(in_size, out_size)
    out = np.arange(start, stop)
    lo = out.astype(F32) * scale  # TF: float(x) * scale, float32
    hi = (out + 1).astype(F32) * scale
    first, end = np.floor(lo).astype(np.int64), np.ceil(hi).astype(np.int64)
    taps = int((end - first).max())
    cell = first[:, None] + np.arange(taps)  # (n, K) candidate input cells
    lo, hi = lo[:, None], hi[:, None]
    starts_before = cell < lo  # the cell begins before the output pixel's span
    ends_after = cell + 1 > hi  # ... or ends after it
    weight = np.where(
        starts_before,
        np.where(ends_after, scale, (cell + 1).astype(F32) - lo),
        np.where(ends_after, hi - cell.astype(F32), F32(1.0)),
    ).astype(F32)
    weight[cell >= end[:, None]] = 0.0  # padding taps
    return np.clip(cell, 0, in_size - 1), weight


def _channel_index(index: np.ndarray, channels: int) -> np.ndarray:
    """Pixel indices (..., n) -> element indices (..., n * channels) of rows laid out W x C."""
    return (index[..., None] * channels + np.arange(channels)).reshape(*index.shape[:-1], -1)


def area_resize(
    image: np.ndarray,
    size: tuple[int, int],
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
) -> np.ndarray:
    """TF's area resize of (H, W, C) uint8 to ``size`` (out H, out W), truncated to uint8;
    only output rows ``rows`` = (start, stop) and columns ``cols`` (default all):
    (stop - start, ..., C) uint8.

    TF sums, per output pixel and channel, over the input rows it covers: (over the columns it
    covers: first pixel x its weight, + whole pixels, + last pixel x its weight) x the row's
    weight; then x 1 / (row scale x column scale). The column sums of an input row do not
    depend on the output row, so they are done once per input row used; adding a zero-weight
    tap leaves a float sum unchanged, so padding every pixel to the same tap count keeps TF's
    exact result.
    """
    h, w, c = image.shape
    rows = rows or (0, size[0])
    cols = cols or (0, size[1])
    y_index, y_weight = _area_taps(h, size[0], *rows)
    x_index, x_weight = _area_taps(w, size[1], *cols)
    used, where = np.unique(y_index, return_inverse=True)
    lines = image[used].reshape(len(used), w * c)
    x_elements = _channel_index(x_index.T, c)  # (taps, out W * C)
    x_weights = np.repeat(x_weight.T, c, axis=1)
    across = np.take(lines, x_elements[0], axis=1).astype(F32)
    across *= x_weights[0]
    for tap in range(1, x_elements.shape[0]):
        part = np.take(lines, x_elements[tap], axis=1) * x_weights[tap]
        across += part
    where = where.reshape(y_index.shape)
    total = np.take(across, where[:, 0], axis=0)
    total *= y_weight[:, :1]
    for tap in range(1, y_index.shape[1]):
        part = np.take(across, where[:, tap], axis=0)
        part *= y_weight[:, tap : tap + 1]
        total += part
    total *= F32(1.0 / float(F32(_scale(h, size[0]) * _scale(w, size[1]))))
    return _truncate(total).reshape(rows[1] - rows[0], cols[1] - cols[0], c)


def _truncate(values: np.ndarray) -> np.ndarray:
    """big_vision's ``tf.cast(tf.clip_by_value(x, 0, 255), tf.uint8)``."""
    return np.clip(values, F32(0.0), F32(255.0), out=values).astype(np.uint8)


@functools.lru_cache(maxsize=256)
def _bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF's half-pixel ``compute_interpolation_weights``: (lower, upper, lerp) per output."""
    scale = _scale(in_size, out_size)
    centre = (np.arange(out_size, dtype=F32) + F32(0.5)) * scale - F32(0.5)
    floor = np.floor(centre)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(centre), in_size - 1).astype(np.intp)
    return lower, upper, (centre - floor).astype(F32)


def bilinear_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """TF's bilinear resize (half-pixel centres, no antialiasing) of (H, W, C) uint8 to
    ``size``, truncated to uint8: (*size, C) uint8.

    TF's ``compute_lerp``: top = tl + (tr - tl) x_lerp, bottom likewise, then
    top + (bottom - top) y_lerp, each step rounded to float32; the horizontal step is done
    once per input row used.
    """
    h, w, c = image.shape
    y_low, y_up, y_lerp = _bilinear_taps(h, size[0])
    x_low, x_up, x_weight = _bilinear_columns(w, size[1], c)
    used, where = np.unique(np.concatenate([y_low, y_up]), return_inverse=True)
    lines = image[used].reshape(len(used), w * c)  # the input rows used
    left = np.take(lines, x_low, axis=1).astype(F32)
    across = np.take(lines, x_up, axis=1) - left  # (tr - tl): exact in float32
    across *= x_weight
    across += left  # each used row at the output columns
    top = np.take(across, where[: size[0]], axis=0)
    bottom = np.take(across, where[size[0] :], axis=0)
    bottom -= top
    bottom *= y_lerp[:, None]
    bottom += top
    # every step is a convex combination of values in [0, 255], rounded to nearest: the
    # result stays in [0, 255], so big_vision's clip changes nothing and the cast truncates
    return bottom.astype(np.uint8).reshape(size[0], size[1], c)


@functools.lru_cache(maxsize=256)
def _bilinear_columns(
    in_size: int, out_size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_bilinear_taps` of the columns as element indices of rows laid out W x C, and the
    lerp repeated per channel."""
    lower, upper, lerp = _bilinear_taps(in_size, out_size)
    return (
        _channel_index(lower[None], channels)[0],
        _channel_index(upper[None], channels)[0],
        np.repeat(lerp, channels),
    )


def resize_small_size(height: int, width: int, smaller: int) -> tuple[int, int]:
    """big_vision's ``resize_small(smaller)`` output size: both sides x smaller / min side, in
    float32, rounded half to even (``tf.round``)."""
    factor = F32(smaller) / F32(min(height, width))
    return int(np.rint(F32(height) * factor)), int(np.rint(F32(width) * factor))


def resize_small_central_crop(image: np.ndarray, smaller: int, crop: tuple[int, int]) -> np.ndarray:
    """big_vision's ``resize_small(smaller)|central_crop(crop)`` on (H, W, C) uint8: the area
    resize, then the centre window (offsets ``(side - crop) // 2``): (*crop, C) uint8. Only the
    kept pixels are computed."""
    new_h, new_w = resize_small_size(image.shape[0], image.shape[1], smaller)
    if crop[0] > new_h or crop[1] > new_w:
        raise ValueError(f"central crop {crop} is larger than the resized image {(new_h, new_w)}")
    top, left = (new_h - crop[0]) // 2, (new_w - crop[1]) // 2
    return area_resize(image, (new_h, new_w), (top, top + crop[0]), (left, left + crop[1]))
