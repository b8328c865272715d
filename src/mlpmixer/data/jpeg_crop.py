"""TensorFlow's ``decode_and_crop_jpeg`` from a full decode: the crop window's edge columns.

TF decodes a crop window with libjpeg-turbo's ``jpeg_crop_scanline``: it moves the window's
left side down to an iMCU boundary (16 pixels when chroma is halved horizontally) and decodes
only the columns from there to the window's right side. Chroma halved horizontally (4:2:0,
4:2:2) is then "fancy" upsampled (triangle filter) across *that* width, and the upsampler
treats the window's two sides as image sides: it does not look past them. Measured against
``tf.image.decode_and_crop_jpeg`` (TF 2.21, tests/data/test_bigvision_goldens.py), a full
decode cropped differs from TF's pixels in exactly two places:

* the window's first column, when the window starts on an iMCU boundary (left % 16 == 0,
  left > 0): TF's chroma there is the chroma sample itself (4:2:2), or its vertical blend
  ``(3 near + far + 2) >> 2`` (4:2:0), not the blend with the sample on its left;
* the window's last column, when the decoded width (right - aligned left) is even and the
  window ends before the image does: it is the second half of a chroma sample whose
  right-hand neighbour TF does not use (so about every second crop, any left side).

When the decoded width is 2 pixels or less (one chroma sample), libjpeg-turbo upsamples by
plain repetition, vertically too. Vertically nothing else differs (``jpeg_skip_scanlines``
keeps the context rows). With no horizontal chroma halving (4:4:4, 4:4:0, greyscale) or the
4:1:1 repetition, TF's crop is the full decode's.

The fastest way to TF's pixels is TF's way: `decode_crop` decodes the window with the system's
libjpeg-turbo itself (``jpeg_crop.c``, built once with the C compiler and ``-ljpeg`` through
`mlpmixer.models.fast.kernel_cache`): only the rows down to the window's bottom, only its
iMCU columns upsampled, so faster than a full decode. Where it cannot be built (no compiler or
no libjpeg headers), `match_tf_crop` recomputes those columns after a full decode: the raw (not upsampled) chroma samples and the luma of the
JPEG, decoded by libjpeg with the integer-fast DCT (TF's default) and no upsampling filter
(PIL's draft mode), upsampled as libjpeg does at an image side, and turned into RGB with
libjpeg's own fixed-point tables (``jdcolor.c``'s ``build_ycc_rgb_table``; bit-identical to
libjpeg's conversion, tested against simplejpeg).
"""

from __future__ import annotations

import ctypes
import functools
import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..models.fast import kernel_cache, pieces

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("jpeg_crop.c")
_FLAGS = ["-O2", "-fPIC"]
_SYMBOL = "mlpmixer_decode_crop"
SWITCH = "MLPMIXER_JPEG_CROP_C"  # 0/false/no/off: the recomputed edge columns, never the C

HALVED = ("420", "422")  # simplejpeg's names of the samplings with horizontally halved chroma
IMCU = 16  # iMCU width of those (8 x the luma's horizontal sampling factor 2)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """libjpeg's YCbCr -> RGB tables (16-bit fixed point, rounded as jdcolor.c rounds)."""
    x = np.arange(256, dtype=np.int64) - 128

    def fix(v: float) -> int:
        return int(v * 65536 + 0.5)

    cr_r = (fix(1.40200) * x + 32768) >> 16
    cb_b = (fix(1.77200) * x + 32768) >> 16
    cr_g = -fix(0.71414) * x
    cb_g = -fix(0.34414) * x + 32768
    return cr_r, cb_b, cr_g, cb_g


CR_R, CB_B, CR_G, CB_G = _tables()


def ycc_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """libjpeg's ``ycc_rgb_convert`` of int arrays of one shape (...) -> (..., 3) uint8."""
    rgb = np.stack([y + CR_R[cr], y + ((CB_G[cb] + CR_G[cr]) >> 16), y + CB_B[cb]], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def edge_columns(
    left: int, right: int, width: int, subsampling: str
) -> tuple[list[tuple[int, str]], bool]:
    """The image columns of the window [left, right) where TF's crop differs from a full
    decode, each with the side TF treats it as (``"left"``/``"right"``), and whether the
    whole window is upsampled by repetition (decoded width <= 2)."""
    if subsampling not in HALVED:
        return [], False
    decoded = right - (left // IMCU) * IMCU
    if decoded <= 2 and width > 2:  # one chroma sample wide: libjpeg-turbo re-picks its upsampler
        return [], True
    columns = []
    if left % IMCU == 0 and left > 0:
        columns.append((left, "left"))
    if decoded % 2 == 0 and right < width:
        columns.append((right - 1, "right"))
    return columns, False


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _with_height(data: bytes, rows: int) -> bytes:
    """``data`` with the frame header's height lowered to ``rows`` (when it is larger), so
    libjpeg decodes only the first rows and skips the rest of the scan as extra data."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in _SOF:
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            if rows >= height:
                return data
            return data[: at + 5] + rows.to_bytes(2, "big") + data[at + 7 :]
        at += 2 + length
    return data


def _raw_window(data: bytes, left: int, right: int, rows: int) -> np.ndarray:
    """(rows, right - left, 3) int64 Y, Cb, Cr of columns [left, right) of the JPEG's first
    ``rows`` rows: libjpeg's integer-fast DCT, chroma repeated, not filtered (PIL's decoder in
    draft mode; the flag that turns draft mode on is the second item of ``decoderconfig``)."""
    image = Image.open(io.BytesIO(_with_height(data, rows)))
    image.draft("YCbCr", None)
    image.decoderconfig = (1, 1)  # scale 1; draft: JDCT_IFAST, do_fancy_upsampling off
    image.load()
    if image.mode != "YCbCr" or image.height < rows:
        raise ValueError(f"PIL decoded the JPEG as {image.mode} {image.size}, not YCbCr")
    return np.asarray(image.crop((left, 0, right, rows))).astype(np.int64)


def _chroma_column(
    plane: np.ndarray, top: int, bottom: int, height: int, vertical: bool, rounding: int
) -> np.ndarray:
    """The upsampled chroma of one column, rows [top, bottom), of an image ``height`` rows
    high, from its repeated samples ``plane`` (rows, ), as libjpeg's fancy upsampler computes it
    at an image side: the sample itself (4:2:2), or the vertical triangle blend
    ``(4 (3 near + far) + rounding) >> 4`` (4:2:0; rounding 8 left, 7 right; the image's top
    and bottom chroma rows repeated)."""
    if not vertical:
        return plane[top:bottom]
    rows = np.arange(top, bottom)
    chroma_rows = (height + 1) // 2
    near = rows // 2
    far = np.clip(np.where(rows % 2 == 0, near - 1, near + 1), 0, chroma_rows - 1)
    colsum = 3 * plane[2 * near] + plane[2 * far]
    return (4 * colsum + rounding) >> 4


def rows_needed(bottom: int, height: int) -> int:
    """The rows a decode must have for its rows above ``bottom`` to be a whole image's: the
    chroma row below the last one (4:2:0's vertical blend), rounded up to an iMCU row."""
    return min(height, -(-(bottom + 2) // IMCU) * IMCU)


def decode_rows(data: bytes, rows: int, decode: Callable[..., np.ndarray]) -> np.ndarray:
    """``decode(jpeg, strict)`` of the JPEG's first ``rows`` rows only (its frame header's
    height lowered; the rest of the scan is skipped as extra data, which libjpeg warns about:
    hence not strict). TF's partial decode also stops at the window's bottom."""
    cut = _with_height(data, rows)
    return decode(cut, cut is data)


def match_tf_crop(
    data: bytes, array: np.ndarray, box: tuple[int, int, int, int], subsampling: str,
    height: int | None = None,
) -> None:  # fmt: skip
    """Make the window ``box`` (left, top, right, bottom) of ``array``, the full-scale decode
    (H, W, 3) uint8 of JPEG ``data`` (its first rows at least to ``rows_needed``), TF's
    ``decode_and_crop_jpeg`` of it (in place). ``height``: the image's (default: the array's)."""
    left, top, right, bottom = (int(v) for v in box)
    width = array.shape[1]
    height = array.shape[0] if height is None else height
    columns, repeated = edge_columns(left, right, width, subsampling)
    if not columns and not repeated:
        return
    edges = [column for column, _ in columns] or [left, right - 1]  # (repeated: the window)
    first, last = min(edges), max(edges)
    planes = _raw_window(data, first, last + 1, rows_needed(bottom, height))
    if repeated:  # plain repetition of each chroma sample, both ways
        window = planes[top:bottom, left - first : right - first]
        array[top:bottom, left:right] = ycc_to_rgb(window[..., 0], window[..., 1], window[..., 2])
        return
    vertical = subsampling == "420"
    for column, side in columns:
        rounding = 8 if side == "left" else 7
        at = column - first
        chroma = [
            _chroma_column(planes[:, at, c], top, bottom, height, vertical, rounding)
            for c in (1, 2)
        ]
        array[top:bottom, column] = ycc_to_rgb(planes[top:bottom, at, 0], *chroma)


# --- TF's own decode of the window, through the system's libjpeg-turbo ------------------------


def _declare(lib: ctypes.CDLL) -> None:
    c_int, ptr = ctypes.c_int, ctypes.c_void_p
    getattr(lib, _SYMBOL).argtypes = [ctypes.c_char_p, ctypes.c_ulong, c_int, c_int, c_int,
                                      c_int, c_int, ptr, ctypes.c_char_p, c_int]  # fmt: skip
    getattr(lib, _SYMBOL).restype = c_int


def _self_test(lib: ctypes.CDLL) -> str | None:
    """None if the library decodes a small 4:2:0 JPEG (accurate DCT) as PIL's libjpeg does."""
    _declare(lib)
    y, x = np.mgrid[:20, :28]
    image = np.stack([x * 9, y * 12, (x * y) % 256], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90, subsampling=2)
    data = buffer.getvalue()
    try:
        got = _call(lib, data, (0, 0, 28, 20), fast_dct=False)
    except ValueError as err:
        return f"refuses a plain JPEG ({err})"
    if not np.array_equal(got, np.asarray(Image.open(io.BytesIO(data)))):
        return "decodes a JPEG otherwise than libjpeg does through PIL"
    return None


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The loaded, verified decoder, or None (said once per process) when it cannot be had."""
    try:
        lib = kernel_cache.load("jpeg_crop", SOURCE, _FLAGS, [_SYMBOL], _self_test, ["-ljpeg"])
    except kernel_cache.KernelUnavailable as err:
        log.info("TF's crop decode through libjpeg-turbo unavailable (%s): a full decode, its "
                 "crop's edge columns recomputed, gives the same pixels, slower", err)  # fmt: skip
        return None
    _declare(lib)
    return lib


def _call(lib: ctypes.CDLL, data: bytes, box: tuple[int, int, int, int], fast_dct: bool):
    left, top, right, bottom = box
    out = np.empty((bottom - top, right - left, 3), np.uint8)
    message = ctypes.create_string_buffer(200)
    status = getattr(lib, _SYMBOL)(data, len(data), int(fast_dct), left, top, right - left,
                                   bottom - top, out.ctypes.data, message, len(message))  # fmt: skip
    if status != 0:
        raise ValueError(message.value.decode(errors="replace"))
    return out


def decode_crop(data: bytes, box: tuple[int, int, int, int], fast_dct: bool) -> np.ndarray | None:
    """TF's ``decode_and_crop_jpeg`` of the window ``box`` (left, top, right, bottom) of JPEG
    ``data``: (bottom - top, right - left, 3) uint8, decoded as TF decodes it (libjpeg-turbo's
    crop decode; ``fast_dct``: the integer-fast DCT, TF's default). None when the decoder is
    unavailable here or ``$MLPMIXER_JPEG_CROP_C`` is 0; `ValueError` with libjpeg's message
    when it refuses the data."""
    lib = None if pieces.switched_off(SWITCH) else _library()
    return None if lib is None else _call(lib, data, box, fast_dct)
