"""MNIST and Fashion-MNIST from their idx files (optionally gzipped).

The idx format: 2 zero bytes, a type code, the number of dimensions, then one big-endian
uint32 per dimension and the row-major data. A directory counts as an idx data set when it
holds ``train-images*idx3*`` and ``t10k-images*idx3*`` files with matching label files.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .fetch import fetch

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_PREFIXES = {"train": "train", "test": "t10k"}
FILES = {
    (split, kind): f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"
    for split, prefix in _PREFIXES.items()
    for kind in ("images", "labels")
}
SOURCES = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one idx(.gz) file; a malformed file is a `DataError` naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read idx file ({err})") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an idx file (bad magic number {data[:4].hex()})")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated idx file ({len(data)} bytes, header needs {header})")
    shape = tuple(int(v) for v in np.frombuffer(data[4:header], dtype=">u4"))
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on absurd shapes
    if len(data) - header != expected:
        raise DataError(
            f"{path}: idx header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(data) - header} bytes of data"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def find_idx_file(directory: Path, split: str, kind: str) -> Path | None:
    """``train-images-idx3-ubyte[.gz]`` and variants (``train-images.idx3-ubyte``) in ``directory``."""
    dims = 3 if kind == "images" else 1
    candidates = sorted(directory.glob(f"{_PREFIXES[split]}-{kind}*idx{dims}-ubyte*"))
    return candidates[0] if candidates else None


def is_idx_dir(directory: Path) -> bool:
    return directory.is_dir() and all(
        find_idx_file(directory, s, k) for s in _PREFIXES for k in ("images", "labels")
    )


def download_idx(name: str, directory: Path) -> None:
    """Fetch the four files of ``name`` ("mnist" or "fashion-mnist") into ``directory``."""
    base, checksums = SOURCES[name]
    for filename, md5 in checksums.items():
        fetch(base + filename, directory / filename, md5)


def load_idx_arrays(directory: Path, split: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": ..., split: ...}: uint8 (N, 1, H, W) images and int64 labels."""
    out = {}
    for part in {"train", split}:
        images_file = find_idx_file(directory, part, "images")
        labels_file = find_idx_file(directory, part, "labels")
        if images_file is None or labels_file is None:
            raise DataError(
                f"{directory}: no {_PREFIXES[part]}-images-idx3-ubyte(.gz) / "
                f"{_PREFIXES[part]}-labels-idx1-ubyte(.gz) files"
            )
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{directory}: {images_file.name} has shape {images.shape} and "
                f"{labels_file.name} {labels.shape}; expected (N, H, W) images and N labels"
            )
        if images.dtype != np.uint8:
            raise DataError(f"{images_file}: expected uint8 pixels, got {images.dtype}")
        out[part] = (
            torch.from_numpy(images.copy())[:, None],
            torch.from_numpy(labels.astype(np.int64)),
        )
    return out
