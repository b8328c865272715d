"""Per-sample decode, crop and resize to uint8 (C, H, W): the worker side of the input pipeline.

One definition of the preprocessing, used by image folders, shards and Hugging Face data sets
(which hand in bytes or decoded images) and by the in-memory arrays (`train_array_sample`):

* training (`train_sample`): big_vision's ``decode_jpeg_and_inception_crop`` — a region of
  ``area`` (fraction of the *whole* image, default 5%-100%) and aspect ratio ``ratio``
  (default 0.75-1.33, drawn uniformly, not log-uniformly) sampled exactly as TensorFlow's
  ``sample_distorted_bounding_box`` does it (integer height uniform between the bounds the
  area allows, 100 attempts, the whole image when all fail; `sample_inception_crop`), resized
  to the output size, then a horizontal flip with probability 1/2, then RandAugment on uint8
  (`mlpmixer.data.randaugment`), as big_vision's ``...|flip_lr|randaug(2,15)``;
* evaluation (`eval_sample`): the shorter side resized to ``size / crop_pct``, centre crop;
  ``area`` is big_vision's ``decode|resize_small|central_crop`` bit for bit.

Decoding: JPEGs with TensorFlow's default integer-fast DCT (libjpeg-turbo through
``simplejpeg`` when installed — extra ``fast`` — else PIL, whose DCT is the accurate one), so
the training crop is big_vision's ``decode_and_crop_jpeg`` (``SampleAugment.decode="full"``:
the window decoded as TF decodes it, `mlpmixer.data.jpeg_crop`); ``"reduced"`` decodes at
1/2, 1/4 or 1/8 size when the crop stays at least the output size there (faster on large
photos, other pixels), else as ``"full"``. The crop is resized as big_vision does it, ``tf.image.resize`` bilinear without antialiasing (half-pixel centres): by torch's
uint8 kernel on a view of the decoded pixels (``resize="torch"``: rounded where TF
truncates) or by TF's float32 arithmetic (``"tf"``, `mlpmixer.data.tf_resize`, bit for bit).
Evaluation other than ``area`` decodes with the accurate DCT and resizes with PIL's
antialiased filter, as timm does, so its numbers match timm's and the official ones.
Randomness comes from a NumPy generator the caller seeds per sample (`sample_rng`), so a
sample's augmentation depends only on (seed, epoch, index), not on which worker draws it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .images import check_pixel_count, pil_array
from .jpeg_crop import decode_crop, decode_rows, match_tf_crop, rows_needed
from .randaugment import randaugment
from .tf_resize import (
    area_resize,
    bilinear_resize,
    resize_small_central_crop,
    resize_small_size,
)

Source = str | os.PathLike[str] | bytes | BinaryIO | Image.Image  # a PIL image: decoded already
Box = tuple[float, float, float, float]  # left, top, right, bottom (PIL's resize box)

PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
}
MAX_ATTEMPTS = 100  # sample_distorted_bounding_box's default
_JPEG_MAGIC = b"\xff\xd8"
_NATIVE_RGB = ("RGB", "L", "1", "CMYK", "YCbCr")  # PIL converts these to RGB exactly

try:  # libjpeg-turbo with every DCT scale; optional (extra "fast"), PIL's draft otherwise
    import simplejpeg
except ImportError:  # pragma: no cover - exercised by forcing USE_SIMPLEJPEG off in tests
    simplejpeg = None
USE_SIMPLEJPEG = simplejpeg is not None


@dataclass(frozen=True)
class SampleAugment:
    """What the worker does to a training sample (the ``augment`` section's worker part).

    ``inception_crop``: sample a crop of ``area`` x ``ratio`` (else the shorter side is resized
    to the output and the centre cropped, as evaluation with ``crop_pct=1``);
    ``hflip``: mirror with probability 1/2; ``randaug_layers``/``randaug_magnitude``:
    RandAugment's N and M on big_vision's (TF AutoAugment's) scale, where 10 is the level of
    the op table's nominal maximum; ``decode`` (`DECODE_MODES`): ``"full"``, TF's
    ``decode_and_crop_jpeg`` of the crop (big_vision's; `mlpmixer.data.jpeg_crop`), or
    ``"reduced"``, a JPEG decoded at 1/2-1/8 scale when the crop stays at least the output
    size there (faster on large photos, other pixels), else as ``"full"``; ``resize`` (`RESIZE_MODES`): ``"torch"``, torch's uint8 kernels (rounded:
    within one grey level of TF's, which truncate), or ``"tf"``, TF's float32 resize bit for
    bit (`mlpmixer.data.tf_resize`; slower).
    """

    inception_crop: bool = True
    area: tuple[float, float] = (0.05, 1.0)
    ratio: tuple[float, float] = (0.75, 1.33)
    hflip: bool = True
    randaug_layers: int = 0
    randaug_magnitude: float = 0.0
    decode: str = "full"
    resize: str = "torch"


DECODE_MODES = ("full", "reduced")  # data.train_decode
RESIZE_MODES = ("torch", "tf")  # data.train_resize


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one training sample: a function of (seed, epoch, index) only."""
    return np.random.default_rng((seed, epoch, index))


# --- the crop -------------------------------------------------------------------------------


def _crop_attempt(
    height: int, width: int, area: tuple[float, float], aspect: np.float32, rng: np.random.Generator
) -> tuple[int, int, int, int] | None:
    """One attempt of TF's ``GenerateRandomCrop`` (float32 arithmetic and rounding as in C++).

    The crop height is an integer drawn uniformly between the heights the area bounds allow
    at this aspect ratio; offsets are uniform in ``[0, side - crop)`` (TF's ``Uniform(n)``).
    """
    f32 = np.float32
    min_area = f32(area[0]) * f32(width) * f32(height)
    max_area = f32(area[1]) * f32(width) * f32(height)
    crop_h = int(np.rint(np.sqrt(min_area / aspect, dtype=f32)))
    max_h = int(np.rint(np.sqrt(max_area / aspect, dtype=f32)))
    if np.rint(f32(max_h) * aspect) > width:  # the tallest crop must also fit the width
        max_h = int((width + 0.5 - float(f32(1e-7))) / float(aspect))  # double, as in C++
        if np.rint(f32(max_h) * aspect) > width:
            max_h -= 1
    max_h = min(max_h, height)
    crop_h = min(crop_h, max_h)
    if crop_h < max_h:
        crop_h += int(rng.integers(0, max_h - crop_h + 1))
    crop_w = int(np.rint(f32(crop_h) * aspect))
    size = f32(crop_w * crop_h)
    if size < min_area:  # tolerate rounding: one pixel taller, then shorter
        crop_h += 1
        crop_w = int(np.rint(f32(crop_h) * aspect))
        size = f32(crop_w * crop_h)
    if size > max_area:
        crop_h -= 1
        crop_w = int(np.rint(f32(crop_h) * aspect))
        size = f32(crop_w * crop_h)
    if not (min_area <= size <= max_area and 0 < crop_w <= width and 0 < crop_h <= height):
        return None
    top = int(rng.integers(0, height - crop_h)) if crop_h < height else 0
    left = int(rng.integers(0, width - crop_w)) if crop_w < width else 0
    return top, left, crop_h, crop_w


def sample_inception_crop(
    height: int,
    width: int,
    rng: np.random.Generator,
    area: tuple[float, float] = (0.05, 1.0),
    ratio: tuple[float, float] = (0.75, 1.33),
    attempts: int = MAX_ATTEMPTS,
) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) of an inception crop of a ``height x width`` image.

    TensorFlow's ``sample_distorted_bounding_box`` as big_vision calls it (no bounding boxes,
    ``min_object_covered=0``): each attempt draws the aspect ratio (width / height) uniformly
    in ``ratio``; the whole image when all ``attempts`` fail.
    """
    low, high = np.float32(ratio[0]), np.float32(ratio[1])
    for _ in range(attempts):
        aspect = np.float32(rng.random(dtype=np.float32)) * (high - low) + low
        crop = _crop_attempt(height, width, area, aspect, rng)
        if crop is not None:
            return crop
    return 0, 0, height, width


def centre_crop_box(height: int, width: int, size: tuple[int, int], crop_pct: float) -> Box:
    """The source region that `eval_sample` resizes to ``size``: shorter side to
    ``size / crop_pct`` (rounded, as `mlpmixer.data.images.resize_image`), centre crop."""
    th, tw = size
    scale = max(th / height, tw / width) / crop_pct
    new_h, new_w = max(th, round(height * scale)), max(tw, round(width * scale))
    top, left = (new_h - th) // 2, (new_w - tw) // 2
    sy, sx = height / new_h, width / new_w
    return left * sx, top * sy, (left + tw) * sx, (top + th) * sy


# --- decoding -------------------------------------------------------------------------------


def _read(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            return handle.read()
    return source.read()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (transparency over white, 16-bit scaled, as `pil_array`)."""
    if image.mode == "RGB":
        return image
    if image.mode in _NATIVE_RGB or (image.mode == "P" and "transparency" not in image.info):
        return image.convert("RGB")
    array = np.rint(pil_array(image) * 255.0).astype(np.uint8)
    return Image.fromarray(np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array, "RGB")


def _scaled(box: Box, sx: float, sy: float) -> Box:
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy


def _needed(box: Box, height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) to decode the whole image at: the smallest power-of-two reduction
    (1, 1/2, 1/4, 1/8) that keeps the box at least ``size``. Other DCT scales (3/8, 5/8...)
    exist, but libjpeg-turbo runs them without SIMD: slower than a full decode."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    factor = 1
    while factor < 8 and bw / (2 * factor) >= size[1] and bh / (2 * factor) >= size[0]:
        factor *= 2
    return math.ceil(height / factor), math.ceil(width / factor)


def _decode_simplejpeg(
    data: bytes, box_of: Callable[[int, int], Box], size: tuple[int, int], reduce: bool,
    fast_dct: bool, tf_crop: bool = False,
) -> tuple[np.ndarray, Box]:  # fmt: skip
    height, width, _, subsampling = simplejpeg.decode_jpeg_header(data)
    check_pixel_count(width, height)  # before simplejpeg allocates (PIL's path checks on open)
    box = box_of(height, width)
    need_h, need_w = _needed(box, height, width, size) if reduce else (height, width)
    if tf_crop and (need_h, need_w) == (height, width):  # full scale: TF's decode_and_crop_jpeg
        return _decode_window(data, box, height, fast_dct, subsampling)
    array = simplejpeg.decode_jpeg(
        data, "RGB", fastdct=fast_dct, min_height=need_h, min_width=need_w
    )
    h, w = array.shape[:2]
    return array, _scaled(box, w / width, h / height)


def _decode_window(
    data: bytes, box: Box, height: int, fast_dct: bool, subsampling: str
) -> tuple[np.ndarray, Box]:
    """TF's ``decode_and_crop_jpeg`` of the box: its pixels and the box in them. By libjpeg's
    own crop decode where it can be built (`jpeg_crop.decode_crop`: just the box); else the
    full-scale decode of the rows down to the box's bottom (`jpeg_crop.rows_needed`), the box's
    edge columns recomputed (`jpeg_crop.match_tf_crop`)."""
    window = _whole_pixels(box)
    crop = decode_crop(data, window, fast_dct)
    if crop is not None:
        return crop, (0.0, 0.0, float(crop.shape[1]), float(crop.shape[0]))

    def decode(jpeg: bytes, strict: bool) -> np.ndarray:
        return simplejpeg.decode_jpeg(jpeg, "RGB", fastdct=fast_dct, strict=strict)

    array = decode_rows(data, rows_needed(window[3], height), decode)
    # should PIL refuse what simplejpeg read, the full decode's pixels stay
    with contextlib.suppress(OSError, ValueError):
        match_tf_crop(data, array, window, subsampling, height)
    return array, box


def _unidentified(data: bytes) -> str:
    """Why PIL found no image format in ``data``, said with what the bytes are."""
    if not data:
        return "cannot identify image file: it is empty (0 bytes)"
    if not data.strip(b"\0 \t\r\n"):
        return f"cannot identify image file: its {len(data):,} bytes are all blank or zero"
    return (
        f"cannot identify image file: its {len(data):,} bytes begin with {data[:8].hex(' ')}, "
        "which is no image format PIL reads (not an image, or damaged at the start)"
    )


def _decode_pil(
    data: bytes, box_of: Callable[[int, int], Box], size: tuple[int, int], reduce: bool
) -> tuple[np.ndarray, Box]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:  # PIL's text names its buffer (<_io.BytesIO at 0x...>)
            raise ValueError(_unidentified(data)) from None
        if image.width <= 0 or image.height <= 0:
            raise ValueError("it has zero width or height")
        width, height = image.size
        box = box_of(height, width)
        if reduce and image.format == "JPEG":
            need_h, need_w = _needed(box, height, width, size)
            image.draft("RGB", (need_w, need_h))
        image.load()
    rgb = np.asarray(_to_rgb(image))
    return rgb, _scaled(box, rgb.shape[1] / width, rgb.shape[0] / height)


def _decode(
    source: Source,
    box_of: Callable[[int, int], Box],
    size: tuple[int, int],
    reduce: bool,
    name: str | None,
    fast_dct: bool | None = None,
    tf_crop: bool = False,
) -> tuple[np.ndarray, Box]:
    """(H, W, 3) uint8 pixels of ``source`` (possibly at a reduced scale) and the box in them;
    any failure is a `DataError` naming ``name`` (default: the path).

    ``fast_dct`` (default: ``reduce``): decode JPEGs with libjpeg's integer-fast DCT, which is
    TensorFlow's default and so big_vision's (simplejpeg only; PIL has the accurate one).
    ``tf_crop``: where a JPEG is decoded at full scale (under simplejpeg), the box's pixels
    are TF's ``decode_and_crop_jpeg`` of it (`mlpmixer.data.jpeg_crop`; the array may then
    hold only the box, which the returned box says)."""
    label = (
        name
        if name is not None
        else (source if isinstance(source, (str, os.PathLike)) else "image")
    )
    try:
        if isinstance(source, Image.Image):  # already decoded (Hugging Face data sets)
            array = np.asarray(_to_rgb(source))
            return array, box_of(array.shape[0], array.shape[1])
        data = _read(source)
        if USE_SIMPLEJPEG and data[:2] == _JPEG_MAGIC:
            try:
                fast = reduce if fast_dct is None else fast_dct
                return _decode_simplejpeg(data, box_of, size, reduce, fast, tf_crop)
            except ValueError:  # a JPEG variant libjpeg-turbo's fast path refuses: PIL decides
                pass
        return _decode_pil(data, box_of, size, reduce)
    except FileNotFoundError as err:
        raise DataError(f"cannot read image {label}: no such file") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"cannot read image {label}: it has more pixels than PIL's decompression-bomb "
            f"limit of {Image.MAX_IMAGE_PIXELS} ({err}); if the file is trusted, raise "
            "PIL.Image.MAX_IMAGE_PIXELS, otherwise remove it"
        ) from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"cannot read image {label}: {err}") from err
    except Exception as err:  # PIL's decoders raise assorted types on malformed files
        raise DataError(f"cannot read image {label}: {type(err).__name__}: {err}") from err


def decode_region(
    source: Source,
    box_of: Callable[[int, int], Box],
    size: tuple[int, int],
    interpolation: str = "bilinear",
    reduce: bool = False,
    name: str | None = None,
) -> Image.Image:
    """Decode ``source`` (path, bytes, binary file or PIL image) and resample the region
    ``box_of(height, width)`` of it to an RGB PIL image of ``size`` (H, W) with PIL's filter
    (antialiased when shrinking, as timm's evaluation).

    ``reduce``: decode a JPEG at the smallest power-of-two DCT scale that keeps the region
    at least ``size``, with the fast integer DCT TensorFlow's decoder uses by default (under
    simplejpeg). Any failure is a `DataError` naming ``name`` (default: the path).
    """
    array, box = _decode(source, box_of, size, reduce, name)
    image = Image.frombuffer("RGB", (array.shape[1], array.shape[0]), array, "raw", "RGB", 0, 1)
    return image.resize((size[1], size[0]), PIL_FILTERS[interpolation], box=box)


def _whole_pixels(box: Box) -> tuple[int, int, int, int]:
    """The box rounded outwards to whole pixels (at least one): left, top, right, bottom."""
    left, top = math.floor(box[0] + 1e-6), math.floor(box[1] + 1e-6)
    right = max(left + 1, math.ceil(box[2] - 1e-6))
    bottom = max(top + 1, math.ceil(box[3] - 1e-6))
    return left, top, right, bottom


def crop_resize(
    array: np.ndarray, box: Box, size: tuple[int, int], interpolation: str, tf: bool = False
) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, *size) uint8: the box (rounded outwards to whole pixels), resized.

    ``tf``: ``bilinear`` as big_vision's ``tf.image.resize(..., antialias=False)``, bit for
    bit (`mlpmixer.data.tf_resize`: float32 as TF, truncated); otherwise ``bilinear``,
    ``bicubic`` and ``nearest`` by torch's uint8 kernels (half-pixel centres, no antialiasing,
    rounded rather than truncated: within one grey level of TF's; 3x faster). ``area`` is
    always TF's.
    """
    left, top, right, bottom = _whole_pixels(box)
    crop = array[top:bottom, left:right]
    if interpolation == "area" or (tf and interpolation == "bilinear"):
        resize = area_resize if interpolation == "area" else bilinear_resize
        return torch.from_numpy(resize(crop, size)).permute(2, 0, 1)
    if not crop.flags.writeable:  # PIL's arrays are read-only; the view is only read
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pixels = torch.from_numpy(crop).permute(2, 0, 1)[None]
    else:
        pixels = torch.from_numpy(crop).permute(2, 0, 1)[None]  # channels-last view, no copy
    options = {} if interpolation == "nearest" else {"antialias": False, "align_corners": False}
    return F.interpolate(pixels, size=size, mode=interpolation, **options)[0]


def to_uint8_tensor(image: Image.Image, in_chans: int = 3) -> torch.Tensor:
    """RGB PIL image -> uint8 (in_chans, H, W); 1 channel is PIL's ITU-R 601 luma."""
    if in_chans == 1:
        return torch.from_numpy(np.asarray(image.convert("L")).copy())[None]
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


# --- the two transforms ------------------------------------------------------------------------


def train_sample(
    source: Source,
    size: tuple[int, int],
    augment: SampleAugment,
    rng: np.random.Generator,
    in_chans: int = 3,
    interpolation: str = "bilinear",
    name: str | None = None,
) -> torch.Tensor:
    """One training image: uint8 (in_chans, *size) after crop, flip and RandAugment.

    The draws, in order: the crop (`sample_inception_crop`), the flip, RandAugment's.
    """
    box_of = _training_box(size, augment, rng)
    reduce = augment.decode == "reduced"  # TF's default DCT, the integer-fast one, either way
    array, box = _decode(source, box_of, size, reduce, name, fast_dct=True, tf_crop=True)
    return augment_pixels(array, box, size, augment, rng, in_chans, interpolation)


def train_array_sample(
    array: np.ndarray,
    size: tuple[int, int],
    augment: SampleAugment,
    rng: np.random.Generator,
    in_chans: int = 3,
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """`train_sample` of decoded (H, W, 3) uint8 pixels (the in-memory data sets): the same
    crop, flip and RandAugment, the same draws, -> uint8 (in_chans, *size)."""
    box = _training_box(size, augment, rng)(array.shape[0], array.shape[1])
    return augment_pixels(array, box, size, augment, rng, in_chans, interpolation)


def _training_box(
    size: tuple[int, int], augment: SampleAugment, rng: np.random.Generator
) -> Callable[[int, int], Box]:
    def box_of(height: int, width: int) -> Box:
        if not augment.inception_crop:  # as the old training resize: shorter side, centre
            return centre_crop_box(height, width, size, 1.0)
        top, left, h, w = sample_inception_crop(height, width, rng, augment.area, augment.ratio)
        return float(left), float(top), float(left + w), float(top + h)

    return box_of


def augment_pixels(
    array: np.ndarray, box: Box, size: tuple[int, int], augment: SampleAugment,
    rng: np.random.Generator, in_chans: int = 3, interpolation: str = "bilinear",
) -> torch.Tensor:  # fmt: skip
    """The part after decoding, one definition for files and arrays: (H, W, 3) uint8 and the
    crop ``box`` in it -> the box resized to ``size``, flipped with probability 1/2,
    RandAugmented: uint8 (in_chans, *size) (1 channel: PIL's ITU-R 601 luma)."""
    image = crop_resize(array, box, size, interpolation, augment.resize == "tf")  # (H, W, C)
    if augment.hflip and rng.random() < 0.5:
        image = image.flip(-1)
    if not augment.randaug_layers and in_chans == 3:
        return image  # (C, H, W) view of (H, W, C) pixels: collation makes the one copy
    pixels = image.permute(1, 2, 0).numpy()  # (H, W, 3) view
    if augment.randaug_layers:
        pixels = randaugment(pixels, augment.randaug_layers, augment.randaug_magnitude, rng)
    if in_chans == 1:
        return to_uint8_tensor(Image.fromarray(np.ascontiguousarray(pixels), "RGB"), 1)
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)  # a writable copy


def eval_sample(
    source: Source,
    size: tuple[int, int],
    crop_pct: float = 1.0,
    in_chans: int = 3,
    interpolation: str = "bilinear",
    name: str | None = None,
) -> torch.Tensor:
    """One evaluation image: uint8 (in_chans, *size), shorter side to ``size / crop_pct``,
    centre crop (full-resolution decode).

    ``area``: big_vision's ``decode|resize_small(S)|central_crop(size)`` bit for bit (TF's
    default integer-fast DCT under simplejpeg, TF's area resize, truncated; S the shorter side
    ``size / crop_pct`` gives, 256 for 224 at 0.875); otherwise timm's: the accurate DCT and
    PIL's antialiased filter.
    """
    if interpolation == "area":
        array, _ = _decode(source, lambda h, w: (0.0, 0.0, w, h), size, False, name, True)
        pixels = resize_small_central_crop(array, _smaller_side(array.shape, size, crop_pct), size)
        image = Image.frombuffer("RGB", (size[1], size[0]), pixels, "raw", "RGB", 0, 1)
        return to_uint8_tensor(image, in_chans)

    def box_of(height: int, width: int) -> Box:
        return centre_crop_box(height, width, size, crop_pct)

    image = decode_region(source, box_of, size, interpolation, reduce=False, name=name)
    return to_uint8_tensor(image, in_chans)


def _smaller_side(shape: tuple[int, ...], size: tuple[int, int], crop_pct: float) -> int:
    """The ``resize_small`` target that `centre_crop_box`'s geometry gives: the shorter side
    after scaling by ``max(size / sides) / crop_pct``, rounded (224 at 0.875: 256), raised
    where float32 rounding would leave the other side a pixel short of the crop."""
    height, width = shape[0], shape[1]
    scale = max(size[0] / height, size[1] / width) / crop_pct
    smaller = max(1, round(min(height, width) * scale))
    while any(a < b for a, b in zip(resize_small_size(height, width, smaller), size, strict=True)):
        smaller += 1
    return smaller


class WorkerSamples:
    """Mixin of the image-file data sets (folders, shards, Hugging Face): their uint8 mode.

    After `use_uint8` items are `eval_sample`'s; after `set_train_augment` they are
    `train_sample`'s, drawn from ``sample_rng(seed, epoch, index)``. Until either, the data
    set gives its float32 images (the public API).
    """

    uint8: bool = False
    augment: SampleAugment | None = None
    seed: int = 0

    def use_uint8(self) -> None:
        """Return uint8 (C, H, W) images from now on (normalised later, on the device)."""
        self.uint8 = True

    def set_train_augment(self, augment: SampleAugment, seed: int) -> None:
        """Worker-side training augmentation (implies uint8 output)."""
        self.augment, self.seed, self.uint8 = augment, seed, True

    def worker_sample(
        self, source: Source, epoch: int, index: int, size: tuple[int, int], crop_pct: float,
        in_chans: int, interpolation: str, name: str | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """uint8 (in_chans, *size): the training sample of (epoch, index), or the eval one."""
        if self.augment is None:
            return eval_sample(source, size, crop_pct, in_chans, interpolation, name)
        rng = sample_rng(self.seed, epoch, index)
        return train_sample(source, size, self.augment, rng, in_chans, interpolation, name)
