"""Regenerate the golden outputs of big_vision's own preprocessing ops (tests/fixtures/bigvision/).

The tests compare our uint8 ops with these arrays exactly (tests/data/test_bigvision_goldens.py).
They come from big_vision's code itself, run under TensorFlow as big_vision runs it, on small
images this script makes (a photograph, a checkerboard, gradients with noise), with fixed draws:

* ``randaugment.npz``: every RandAugment op of ``big_vision/pp/autoaugment.py`` at the
  magnitudes the recipes use (0, 3, 5, 10, 15, 20), through its own ``_parse_policy_info``
  (the magnitude -> argument mapping ``distort_image_with_randaugment`` uses), both signs for
  the geometric ops, a fixed centre for Cutout;
* ``eval_resize.npz``: ``resize_small(S)|central_crop(C)`` of ``big_vision/pp/ops_image.py``
  (area resize) for a few sizes;
* ``train_decode.npz``: ``decode_jpeg_and_inception_crop(size)`` of ops_image.py on JPEGs this
  script encodes, with the crop window fixed (its ``sample_distorted_bounding_box`` replaced by
  the given box), and TF's plain ``decode`` of each JPEG;
* ``train_crop.npz``: the same op on 4:2:0, 4:2:2 and 4:4:4 JPEGs with crop windows on and off
  libjpeg-turbo's 16-pixel iMCU columns (``CROP_BOXES``), and the edge columns of TF's
  ``decode_and_crop_jpeg`` window itself, which differ from a full decode's.

Set-up (big_vision is Apache-2.0; nothing of it is copied into this project)::

    git clone https://github.com/google-research/big_vision /tmp/big_vision
    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.21.0 numpy pillow scikit-learn
    /tmp/tf/bin/python benchmarks/bigvision_goldens.py /tmp/big_vision

Stubs: autoaugment.py imports ``tensorflow_addons.image`` (end-of-life; no wheel for TF 2.21).
This script registers a minimal stand-in module with the three functions autoaugment.py calls,
``transform``, ``rotate`` and ``translate``: the projective matrices tfa builds (rotation about
((w-1)/2, (h-1)/2); translation by minus the offset) handed to TensorFlow's own kernel
``ImageProjectiveTransformV2`` with nearest-neighbour interpolation and constant (zero) fill, as
tfa 0.x does. The random draws (the sign of a geometric op, Cutout's centre, the inception box)
are fixed by giving the module a proxy of its ``tf`` whose random functions return set values.
Everything else is big_vision's code under TF 2.21, default settings (oneDNN on) on CPU.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "bigvision"
MAGNITUDES = (0, 3, 5, 10, 15, 20)
SIZE = (40, 48)  # RandAugment inputs: small, so the golden file stays small


# --- inputs -----------------------------------------------------------------------------------


def photo() -> np.ndarray:
    """sklearn's sample photograph (427 x 640 RGB), uint8."""
    from sklearn.datasets import load_sample_image

    return np.ascontiguousarray(load_sample_image("china.jpg"))


def small(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.LANCZOS))


def checkerboard(size: tuple[int, int], square: int = 4) -> np.ndarray:
    y, x = np.mgrid[: size[0], : size[1]]
    on = ((y // square + x // square) % 2).astype(bool)
    out = np.zeros((*size, 3), np.uint8)
    out[on] = (250, 30, 200)
    out[~on] = (5, 220, 60)
    return out


def gradients(size: tuple[int, int], period: float = 5.0) -> np.ndarray:
    """Ramps in red and green, a wave in blue (smooth: it compresses to little)."""
    h, w = size
    y, x = np.mgrid[:h, :w].astype(np.float64)
    wave = 127.5 + 127.5 * np.sin(x / period + y / (period + 2))
    base = np.stack([255 * x / (w - 1), 255 * y / (h - 1), wave], 2)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def inputs(size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The photograph smaller than the others (its pixels do not compress); two sizes also
    give Contrast two different grey levels (pixel count / 256)."""
    return {"photo": small(photo()[60:380, 100:560], (24, 32)), "checker": checkerboard(size),
            "gradient": gradients((24, 32))}  # fmt: skip


# --- stubs ------------------------------------------------------------------------------------


class Scripted:
    """A proxy of a module whose listed attributes are replaced; other names pass through."""

    def __init__(self, module: object, **replaced: object) -> None:
        self._module, self._replaced = module, replaced

    def __getattr__(self, name: str) -> object:
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._module, name)


def install_tfa_stub(tf) -> None:
    """A stand-in for ``tensorflow_addons.image`` (see the module docstring)."""

    def transform(images, transforms, interpolation="NEAREST", fill_mode="CONSTANT"):
        images = tf.convert_to_tensor(images)
        four = images[None] if images.shape.rank == 3 else images
        matrix = tf.reshape(tf.cast(tf.convert_to_tensor(transforms), tf.float32), [-1, 8])
        out = tf.raw_ops.ImageProjectiveTransformV2(
            images=four, transforms=matrix, output_shape=tf.shape(four)[1:3],
            interpolation=interpolation.upper(), fill_mode=fill_mode.upper(),
        )  # fmt: skip
        return out[0] if images.shape.rank == 3 else out

    def rotate(images, angles):
        h = tf.cast(tf.shape(images)[0], tf.float32)
        w = tf.cast(tf.shape(images)[1], tf.float32)
        angle = tf.cast(angles, tf.float32)
        cos, sin = tf.math.cos(angle), tf.math.sin(angle)
        x_off = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
        y_off = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
        return transform(images, tf.stack([cos, -sin, x_off, sin, cos, y_off, 0.0, 0.0]))

    def translate(images, translations):
        dx, dy = tf.unstack(tf.cast(tf.convert_to_tensor(translations), tf.float32))
        return transform(images, tf.stack([1.0, 0.0, -dx, 0.0, 1.0, -dy, 0.0, 0.0]))

    image = types.ModuleType("tensorflow_addons.image")
    image.transform, image.rotate, image.translate = transform, rotate, translate
    package = types.ModuleType("tensorflow_addons")
    package.image = image
    sys.modules["tensorflow_addons"], sys.modules["tensorflow_addons.image"] = package, image


# --- goldens ----------------------------------------------------------------------------------


def scripted_uniform(tf, floats: list[float], ints: list[int]):
    """A ``tf.random_uniform`` that returns ``floats`` then ``ints`` (int32 draws) in order."""
    float_draws, int_draws = iter(floats), iter(ints)

    def uniform(shape=(), minval=0, maxval=None, dtype=tf.float32, **_):
        if dtype == tf.int32:
            return tf.constant(next(int_draws), tf.int32)
        return tf.constant(next(float_draws), dtype)

    return uniform


def randaugment_goldens(autoaugment, tf) -> dict[str, np.ndarray]:
    """Every op at every magnitude; key ``{image}|{op}|M{m}|{sign}`` (sign: pos, neg, or -)."""
    real_tf = autoaugment.tf
    hparams = autoaugment.HParams(cutout_const=40, translate_const=100)
    out: dict[str, np.ndarray] = {}
    images = inputs(SIZE)
    for name, image in images.items():
        out[f"input|{name}"] = image
    centres = {"photo": (3, 31), "checker": (20, 20), "gradient": (23, 0)}
    out["cutout_centres"] = np.array([centres[name] for name in images], np.int32)
    ops = list(autoaugment.NAME_TO_FUNC)
    for op in ops:
        geometric = op in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")
        for m in MAGNITUDES:
            for sign in ("pos", "neg") if geometric else ("-",):
                for name, image in images.items():
                    # _randomly_negate_tensor keeps the sign where floor(u + 0.5) is 1
                    floats = [0.75 if sign == "pos" else 0.25] if geometric else []
                    uniform = scripted_uniform(tf, floats, list(centres[name]))
                    autoaugment.tf = Scripted(real_tf, random_uniform=uniform)
                    try:
                        func, _, args = autoaugment._parse_policy_info(
                            op, 0.5, float(m), [128, 128, 128], hparams
                        )
                        result = func(tf.constant(image), *args)
                    finally:
                        autoaugment.tf = real_tf
                    out[f"{name}|{op}|M{m}|{sign}"] = np.asarray(result, np.uint8)
    out.update(warps_at_224(autoaugment, tf, hparams))
    return out


def warps_at_224(autoaugment, tf, hparams) -> dict[str, np.ndarray]:
    """Rotate, ShearX and ShearY of a 224 x 224 checkerboard at the ImageNet recipe's M = 15,
    both signs: the pixel mapping over a whole training image (``big|{op}|M15|{sign}``)."""
    real_tf = autoaugment.tf
    image = checkerboard((224, 224), 7)
    out = {"input|big": image}
    for op in ("Rotate", "ShearX", "ShearY"):
        for sign in ("pos", "neg"):
            uniform = scripted_uniform(tf, [0.75 if sign == "pos" else 0.25], [])
            autoaugment.tf = Scripted(real_tf, random_uniform=uniform)
            try:
                func, _, args = autoaugment._parse_policy_info(
                    op, 0.5, 15.0, [128, 128, 128], hparams
                )
                out[f"big|{op}|M15|{sign}"] = np.asarray(func(tf.constant(image), *args))
            finally:
                autoaugment.tf = real_tf
    return out


def eval_goldens(ops_image, tf) -> dict[str, np.ndarray]:
    """``resize_small(S)|central_crop(C)``: key ``{image}|S{s}|C{c}``, its input ``input|...``."""
    cases = {
        "photo": (small(photo(), (77, 101)), [(64, 56), (40, 36), (70, 60)]),
        "photo_tall": (small(photo(), (110, 59))[:, :, ::-1].copy(), [(50, 44), (33, 30)]),
        "checker": (checkerboard((300, 400), 3), [(256, 224), (113, 100)]),
        "gradient": (gradients((375, 500), 1), [(256, 224)]),
        "up": (gradients((20, 30), 2.0), [(48, 40)]),  # area resize up-scaling
    }
    out: dict[str, np.ndarray] = {}
    for name, (image, sizes) in cases.items():
        out[f"input|{name}"] = image
        for s, c in sizes:
            data = {"image": tf.constant(image)}
            data = ops_image.get_resize_small(s)(data)
            data = ops_image.get_central_crop(c)(data)
            out[f"{name}|S{s}|C{c}"] = data["image"].numpy()
    return out


def jpeg(image: np.ndarray, quality: int, subsampling: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    return buffer.getvalue()


def inception_crop(ops_image, tf, data: bytes, box: tuple[int, int, int, int], size: int):
    """big_vision's ``decode_jpeg_and_inception_crop(size)`` of ``data`` with its crop window
    (``sample_distorted_bounding_box``'s draw) fixed to ``box`` (top, left, height, width)."""
    real_tf = ops_image.tf

    def fixed(*_, **__):
        return tf.constant([box[0], box[1], 0]), tf.constant([box[2], box[3], -1]), None

    ops_image.tf = Scripted(
        real_tf, image=Scripted(real_tf.image, sample_distorted_bounding_box=fixed)
    )
    try:
        op = ops_image.get_decode_jpeg_and_inception_crop(size)
        return op({"image": tf.constant(data)})["image"].numpy()
    finally:
        ops_image.tf = real_tf


def decode_goldens(ops_image, tf) -> dict[str, np.ndarray]:
    """decode_jpeg_and_inception_crop(size) with fixed boxes: key ``{jpeg}|{box index}|{size}``;
    ``box|{jpeg}``: (k, 4) int32 (top, left, height, width); ``decoded|{jpeg}``: TF's decode."""
    sources = {
        "photo420": jpeg(photo()[150:300, 300:490], 90, 2),
        "photo444": jpeg(photo()[200:353, 250:443], 95, 0),
        "checker": jpeg(checkerboard((150, 190), 5), 85, 2),
        "gradient": jpeg(gradients((171, 213), 3.0), 90, 1),
    }
    boxes = [
        (0, 0, 150, 190),
        (13, 7, 97, 131),
        (40, 51, 61, 45),
        (5, 3, 140, 100),
        (32, 48, 61, 45),
    ]
    sizes = (40,)
    out: dict[str, np.ndarray] = {}
    for name, data in sources.items():
        out[f"jpeg|{name}"] = np.frombuffer(data, np.uint8)
        if not name.startswith("photo"):  # (the photographs' pixels would be most of the file)
            decoded = ops_image.get_decode()({"image": tf.constant(data)})["image"].numpy()
            out[f"decoded|{name}"] = decoded
        out[f"box|{name}"] = np.array(boxes, np.int32)
        for k, box in enumerate(boxes):
            for size in sizes:
                out[f"{name}|{k}|{size}"] = inception_crop(ops_image, tf, data, box, size)
    return out


# Crop windows (top, left, height, width) of a 98 x 118 JPEG around libjpeg-turbo's 16-pixel
# iMCU columns, where TF's partial decode differs from a full one (src/mlpmixer/data/jpeg_crop.py)
CROP_BOXES = [
    (0, 0, 98, 118),  # the whole image
    (13, 16, 60, 50),  # left on an iMCU boundary, decoded width 50 (even): both sides
    (13, 32, 60, 48),  # both sides on iMCU boundaries
    (5, 7, 70, 61),  # left off a boundary, decoded width 68: the right side only
    (5, 7, 70, 60),  # decoded width 67 (odd): a full decode's pixels
    (16, 48, 64, 70),  # left on a boundary, right at the image's side
    (32, 33, 61, 45),  # top on an iMCU row, decoded width 62
    (20, 64, 40, 2),  # decoded width 2: one chroma sample, upsampled by repetition
    (20, 65, 40, 1),  # decoded width 2 from off the boundary
    (20, 80, 30, 4),  # decoded width 4, both sides
    (40, 17, 30, 3),  # decoded width 4, the right side only
    (3, 96, 90, 22),  # left on a boundary, to the image's side
    (60, 1, 38, 100),  # bottom at the image's, decoded width 101 (odd)
]


def crop_goldens(ops_image, tf) -> dict[str, np.ndarray]:
    """decode_jpeg_and_inception_crop(32) of ``CROP_BOXES`` on 4:2:0, 4:2:2 and 4:4:4 JPEGs:
    ``{jpeg}|{box index}|32`` as in `decode_goldens`; ``edges|{jpeg}|{k}``: (h, 2, 3) the first
    and last column of TF's ``decode_and_crop_jpeg`` window itself (where it differs from a
    full decode); ``box|{jpeg}``: the boxes."""
    picture = small(photo()[80:380, 120:480], (98, 118))
    sources = {
        "photo420": jpeg(picture, 90, 2),
        "checker420": jpeg(checkerboard((98, 118), 5), 90, 2),
        "checker422": jpeg(checkerboard((98, 118), 3), 90, 1),
        "checker444": jpeg(checkerboard((98, 118), 5), 90, 0),
    }
    out: dict[str, np.ndarray] = {}
    for name, data in sources.items():
        out[f"jpeg|{name}"] = np.frombuffer(data, np.uint8)
        out[f"box|{name}"] = np.array(CROP_BOXES, np.int32)
        for k, box in enumerate(CROP_BOXES):
            window = tf.image.decode_and_crop_jpeg(data, list(box), channels=3).numpy()
            out[f"edges|{name}|{k}"] = np.ascontiguousarray(window[:, [0, -1]])
            out[f"{name}|{k}|32"] = inception_crop(ops_image, tf, data, box, 32)
    return out


def png(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 as lossless PNG bytes, (n,) uint8: PNG's row filters compress smooth
    images far better than the npz's deflate alone."""
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, "PNG", optimize=True)
    return np.frombuffer(buffer.getvalue(), np.uint8)


def deduplicated(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each distinct array once, as ``array|{i}`` (images: ``png|{i}``, PNG bytes); ``keys``
    (n,) str and ``index`` (n,) int32 say which key holds which (many ops at some magnitudes
    give the same pixels)."""
    seen: dict[bytes, int] = {}
    out: dict[str, np.ndarray] = {}
    index = []
    for array in arrays.values():
        tag = array.dtype.str.encode() + str(array.shape).encode() + array.tobytes()
        if tag not in seen:
            seen[tag] = len(seen)
            if array.ndim == 3 and array.dtype == np.uint8 and array.shape[2] == 3:
                out[f"png|{seen[tag]}"] = png(array)
            else:
                out[f"array|{seen[tag]}"] = array
        index.append(seen[tag])
    out["keys"] = np.array(list(arrays))
    out["index"] = np.array(index, np.int32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("big_vision", type=Path, help="a checkout of google-research/big_vision")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    install_tfa_stub(tf)
    sys.path.insert(0, str(args.big_vision.resolve()))
    from big_vision.pp import autoaugment, ops_image

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"tensorflow": tf.__version__}
    for stem, make in (
        ("randaugment", lambda: randaugment_goldens(autoaugment, tf)),
        ("eval_resize", lambda: eval_goldens(ops_image, tf)),
        ("train_decode", lambda: decode_goldens(ops_image, tf)),
        ("train_crop", lambda: crop_goldens(ops_image, tf)),
    ):
        arrays = deduplicated(make())
        arrays["meta|tensorflow"] = np.array(meta["tensorflow"])
        path = args.out / f"{stem}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path}: {len(arrays)} arrays, {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
