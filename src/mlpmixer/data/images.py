"""Decoding images of any PIL mode into float tensors, and resizing them.

Every mode becomes float32 (C, H, W) in [0, 1] with C = 1 or 3, keeping the precision of
16-bit images (PIL's own ``convert("L")`` would truncate them to 8 bits):

* ``1``, ``L``, ``P`` (palette), ``RGB`` and friends: divided by 255;
* ``I;16*`` (16-bit): divided by 65535; ``I`` (32-bit int, how PIL often opens 16-bit PNG):
  divided by 65535 and clipped; ``F`` (float): taken as [0, 1] and clipped;
* transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent colour): composited
  over a white background, so transparent pixels do not reveal whatever colour was stored
  under them;
* ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: converted to RGB.

Channel adaptation: gray -> RGB repeats the channel; RGB -> gray uses the ITU-R 601 luma
weights (0.299, 0.587, 0.114), as PIL does.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
BACKGROUND = 1.0  # white, in [0, 1]
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S")
_GRAY_8BIT = ("1", "L")


def _with_alpha(image: Image.Image) -> np.ndarray:
    """RGBA or LA image -> (H, W, C) colour composited over the background."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    colour, alpha = array[..., :-1], array[..., -1:]
    return colour * alpha + BACKGROUND * (1.0 - alpha)


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def pil_array(image: Image.Image) -> np.ndarray:
    """Any PIL image -> float32 (H, W, 1 or 3) in [0, 1], at its own resolution."""
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        array = np.asarray(image).astype(np.float32) / 65535.0
    elif mode == "I":
        array = np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
    elif mode == "F":
        array = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    elif mode in _GRAY_8BIT:
        array = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    elif _has_transparency(image):
        array = _with_alpha(image.convert("LA" if mode in ("LA", "La") else "RGBA"))
    elif mode == "RGB":
        array = np.asarray(image, dtype=np.float32) / 255.0
    else:  # P without transparency, CMYK, YCbCr, LAB, HSV, RGBX ...
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return array


def adapt_channels(images: torch.Tensor, in_chans: int) -> torch.Tensor:
    """(..., C, H, W) with C in {1, 3} -> (..., in_chans, H, W)."""
    channels = images.shape[-3]
    if channels == in_chans:
        return images
    if channels == 1 and in_chans == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    if channels == 3 and in_chans == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype).view(3, 1, 1)
        return (images * weights).sum(dim=-3, keepdim=True)
    raise DataError(f"cannot convert images with {channels} channels to in_chans={in_chans}")


def pil_to_tensor(image: Image.Image, in_chans: int | None = 3) -> torch.Tensor:
    """Any PIL image -> float32 (in_chans, H, W) in [0, 1] (``None``: native 1 or 3 channels)."""
    tensor = torch.from_numpy(np.ascontiguousarray(pil_array(image))).permute(2, 0, 1)
    return tensor if in_chans is None else adapt_channels(tensor, in_chans)


def _bomb_message(path: object) -> str:
    # not PIL's own text: past twice the limit it quotes that other number
    return (
        f"cannot read image {path}: it has more pixels than PIL's decompression-bomb limit "
        f"of {Image.MAX_IMAGE_PIXELS} pixels; if the file is trusted, raise "
        "PIL.Image.MAX_IMAGE_PIXELS, otherwise remove it"
    )


def check_pixel_count(width: int, height: int) -> None:
    """PIL's ``DecompressionBombError`` if a header's ``width x height`` exceeds
    ``PIL.Image.MAX_IMAGE_PIXELS``: for decoders other than PIL (simplejpeg), called on the
    header before any pixel buffer is allocated."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise Image.DecompressionBombError(f"{width}x{height} = {width * height:,} pixels")


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def not_a_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a regular file (after links: a link to /dev/zero is a character
    device), or None. Reading one could block forever (a FIFO) or never end (/dev/zero)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken link" if os.path.islink(path) else None  # absent: said on opening
    except OSError as err:
        return f"cannot be examined ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return f"{kind}, not a regular file"


def read_file(path: Path) -> bytes:
    """The bytes of an image file; `DataError` for what is not a regular file (a FIFO would
    block, /dev/zero never end) or cannot be read."""
    if kind := not_a_file(path):
        raise DataError(f"cannot read image {path}: it is {kind}")
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read image {path}: {err.strerror or err}") from err


@contextlib.contextmanager
def open_image(
    source: str | os.PathLike[str] | BinaryIO, *, name: object = None
) -> Iterator[Image.Image]:
    """The one way images are opened: a PIL image with only its header read, refused before
    any reading if ``source`` is a path to something other than a regular file (a FIFO would
    block, /dev/zero never end), and before any decoding if it has zero size or more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``
    (PIL only warns between the limit and twice it; here both are errors, so a 333-byte
    file claiming 65000 x 65000 never allocates gigabytes).

    Any failure inside the block (opening, ``load()``, conversion) becomes a `DataError`
    "cannot read image NAME: ..." (``name`` defaults to the path)."""
    path = name if name is not None else source
    if isinstance(source, (str, os.PathLike)) and (kind := not_a_file(source)):
        raise DataError(f"cannot read image {path}: it is {kind}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                if image.width <= 0 or image.height <= 0:
                    raise DataError(f"cannot read image {path}: it has zero width or height")
                check_pixel_count(image.width, image.height)
                yield image
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(_bomb_message(path)) from err
    except FileNotFoundError as err:
        raise DataError(f"cannot read image {path}: no such file") from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err
    except Exception as err:  # PIL's decoders raise assorted types on malformed files
        raise DataError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


def load_image(
    path: str | os.PathLike[str] | BinaryIO, in_chans: int | None = 3, *, name: str | None = None
) -> torch.Tensor:
    """Decode one image file -> float32 (in_chans, H, W) in [0, 1]; `DataError` if unreadable.

    ``path`` may also be an open binary file (e.g. ``io.BytesIO`` of a shard record); errors
    then name ``name`` (e.g. "shard URL, sample KEY").

    Any decoding failure is a `DataError` naming the file: not an image, empty, truncated,
    zero width or height, or larger than PIL's decompression-bomb limit (`open_image`).
    """
    with open_image(path, name=name) as image:
        image.load()
        return pil_to_tensor(image, in_chans)


def resize_image(
    image: torch.Tensor,
    img_size: tuple[int, int],
    crop_pct: float = 1.0,
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """(C, H, W) or (N, C, H, W) -> (..., *img_size): shorter side to ``img_size / crop_pct``,
    then centre crop.

    With ``crop_pct=1`` and an image of the target aspect ratio this is a plain resize.
    Downscaling is antialiased. Values stay in [0, 1] (bicubic overshoot is clipped).
    """
    h, w = image.shape[-2:]
    th, tw = img_size
    if (h, w) == (th, tw):
        return image
    scale = max(th / h, tw / w) / crop_pct
    new_h, new_w = max(th, round(h * scale)), max(tw, round(w * scale))
    batch = image if image.ndim == 4 else image[None]
    antialias = interpolation in ("bilinear", "bicubic")
    options = {"antialias": antialias, "align_corners": False} if antialias else {}
    resized = F.interpolate(batch, size=(new_h, new_w), mode=interpolation, **options)
    top, left = (new_h - th) // 2, (new_w - tw) // 2
    out = resized[..., top : top + th, left : left + tw].clamp(0.0, 1.0)
    return out if image.ndim == 4 else out[0]
