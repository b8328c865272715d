"""Data sets held in memory as one array (digits, MNIST, CIFAR): `ArrayDataset`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .images import adapt_channels, resize_image

PRECONVERT_BYTES = 256 * 2**20  # float arrays up to this size are converted once, up front


class ArrayDataset(Dataset):
    """(N, C, H, W) images (uint8 0..255 or float 0..1) and int labels, as a torch Dataset.

    Items are ``(float32 (in_chans, *img_size) in [0, 1], int label)``. Arrays whose float
    version fits in `PRECONVERT_BYTES` are converted and resized once at construction; larger
    ones (CIFAR at 224) per item, in the DataLoader workers.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        in_chans: int,
        img_size: tuple[int, int],
        interpolation: str = "bilinear",
    ) -> None:
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise DataError(
                f"images must be (N, C, H, W) with one label each, got {tuple(images.shape)} "
                f"and {tuple(labels.shape)}"
            )
        self.labels = labels.long()
        self.in_chans = in_chans
        self.img_size = tuple(img_size)
        self.interpolation = interpolation
        self.scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
        self.images = images
        n = images.shape[0]
        if n * in_chans * self.img_size[0] * self.img_size[1] * 4 <= PRECONVERT_BYTES:
            # small enough: convert and resize once, in batches, instead of per item
            self.images = torch.cat([self._convert(part) for part in images.split(4096)])
            self.scale = 1.0

    def __len__(self) -> int:
        return self.images.shape[0]

    def _convert(self, images: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) stored images -> float (n, in_chans, *img_size) in [0, 1]."""
        if (
            images.dtype == torch.float32
            and self.scale == 1.0
            and images.shape[1:] == (self.in_chans, *self.img_size)
        ):
            return images
        x = adapt_channels(images.float() * self.scale, self.in_chans)
        return resize_image(x, self.img_size, 1.0, self.interpolation)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._convert(self.images[index : index + 1])[0], int(self.labels[index])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        """Batched fetch (DataLoader uses it when present): one gather instead of N."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        images = self._convert(self.images[index])
        return list(zip(images.unbind(0), self.labels[index].tolist(), strict=True))


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class split in the same proportion, seeded, sorted."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"the held-out fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        n_test = round(len(members) * test_fraction)
        if len(members) > 1:
            n_test = min(max(n_test, 1), len(members) - 1)  # both sides see every class
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
