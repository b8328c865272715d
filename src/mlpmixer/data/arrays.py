"""Data sets held in memory as one array (digits, MNIST, CIFAR): `ArrayDataset`.

Training augmentation has one definition for these and for image files: after
`ArrayDataset.set_train_augment`, a training item is `mlpmixer.data.transforms`'
`train_array_sample` of the stored pixels (the same crop sampler, resize, flip and
RandAugment, seeded per sample by (seed, epoch, index)), as a folder's item is
`train_sample` of its file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .images import adapt_channels, resize_image
from .transforms import SampleAugment, sample_rng, train_array_sample

PRECONVERT_BYTES = 256 * 2**20  # float arrays up to this size are converted once, up front


class ArrayDataset(Dataset):
    """(N, C, H, W) images (uint8 0..255 or float 0..1) and int labels, as a torch Dataset.

    Items are ``(float32 (in_chans, *img_size) in [0, 1], int label)``. Arrays whose float
    version fits in `PRECONVERT_BYTES` are converted and resized once at construction; larger
    ones (CIFAR at 224) per item, in the DataLoader workers. After `set_train_augment` with a
    crop, flip or RandAugment to do, items keyed ``(epoch, index)`` are uint8 training
    samples instead (`train_array_sample`).
    """

    augment: SampleAugment | None = None
    seed: int = 0

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
        self.stored = images  # as given: training samples crop from these (files' rule)
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

    def set_train_augment(self, augment: SampleAugment, seed: int) -> None:
        """Training items from now on: ``augment``'s crop, flip and RandAugment of the stored
        pixels, drawn from ``sample_rng(seed, epoch, index)`` (as image files')."""
        self.augment, self.seed = augment, seed

    def _augments(self) -> bool:
        a = self.augment
        return a is not None and (a.inception_crop or a.hflip or a.randaug_layers > 0)

    def _pixels(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 of image ``index`` as given, at its own size, as a file would be
        decoded (gray repeated; floats in [0, 1] x 255, rounded)."""
        image = self.stored[index]
        if image.dtype != torch.uint8:
            image = (image.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        return image.permute(1, 2, 0).numpy()

    def _training_item(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        assert self.augment is not None
        rng = sample_rng(self.seed, epoch, index)
        image = train_array_sample(
            self._pixels(index), self.img_size, self.augment, rng, self.in_chans,  # type: ignore[arg-type]
            self.interpolation,
        )  # fmt: skip
        return image, int(self.labels[index])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if self._augments():
            return self._training_item(key)
        index = key[1] if isinstance(key, tuple) else key
        return self._convert(self.images[index : index + 1])[0], int(self.labels[index])

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list[tuple[torch.Tensor, int]]:
        """Batched fetch (DataLoader uses it when present): one gather instead of N."""
        if self._augments():
            return [self._training_item(key) for key in keys]
        indices = [key[1] if isinstance(key, tuple) else key for key in keys]
        index = torch.as_tensor(indices, dtype=torch.long)
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
