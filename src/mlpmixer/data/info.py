"""`DatasetInfo`: what a model needs to know about a data set, and per-channel normalisation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DatasetInfo:
    """Description of one split of a data set. ``mean``/``std`` are the training split's."""

    name: str
    split: str
    num_classes: int
    class_names: tuple[str, ...]
    in_chans: int
    img_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_examples: int
    in_memory: bool = False
    skipped: tuple[str, ...] = ()  # "PATH: reason" of unreadable files left out (skip_bad_images)

    def model_fields(self) -> dict[str, Any]:
        """The `MixerConfig` fields a model trained on this data should carry."""
        return {
            "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "mean": self.mean,
            "std": self.std,
        }


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, C, H, W) images in [0, 1] (or uint8 in [0, 255]) -> (images - mean) / std, per channel.

    uint8 batches (the image-file loaders') become float32 here, on the device they were
    copied to, so workers, collation and the host-to-device copy move a quarter of the bytes.
    """
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    shape = (1, -1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images - mean_t) / std_t


def channel_stats(chunks: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std over (n, C, H, W) chunks of images, accumulated in float64.

    Taking chunks keeps memory small for 50,000-image arrays.
    """
    total = total_sq = None
    count = 0
    for part in chunks:
        x = part.to(torch.float64)
        sums, sq = x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))
        total = sums if total is None else total + sums
        total_sq = sq if total_sq is None else total_sq + sq
        count += x.shape[0] * x.shape[2] * x.shape[3]
    if total is None or total_sq is None or count == 0:
        raise ValueError("channel_stats needs at least one image")
    mean = total / count
    # clamp: a constant channel (e.g. an all-black border data set) must not divide by zero
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-3)
    return _rounded(mean), _rounded(std)


def _rounded(values: torch.Tensor) -> tuple[float, ...]:
    return tuple(round(v, 6) for v in values.tolist())
