"""Images for calibration and accuracy checks: a data set's split, prepared exactly as
`mlpmixer eval` prepares it for the model (resolution, channels, crop, normalisation)."""

from __future__ import annotations

import os

import torch

from ..data import build_dataset
from ..data.info import normalize
from ..data.tensors import dataset_tensors
from ..errors import DataError
from ..models.config import MixerConfig


def data_split(
    config: MixerConfig,
    dataset: str | os.PathLike[str],
    split: str,
    limit: int | None = None,
    seed: int | None = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, H, W) normalised as the model takes them, labels (N,)) of ``split``.

    With ``limit``, a random sample of that many (``seed``), since image folders are sorted
    by class and their first images are all one class.
    """
    data, _ = build_dataset(
        dataset,
        split,
        img_size=config.img_size,
        in_chans=config.in_chans,
        crop_pct=config.crop_pct,
        interpolation=config.interpolation,
    )
    images, labels = dataset_tensors(data, limit=limit, seed=seed if limit else None)
    if images.shape[0] == 0:
        raise DataError(f"{dataset}: its {split} split has no images")
    return normalize(images, tuple(config.mean), tuple(config.std)), labels


def calibration_images(
    config: MixerConfig, dataset: str | os.PathLike[str], count: int = 512, seed: int = 0
) -> torch.Tensor:
    """``count`` training images of ``dataset`` (a random sample), for static calibration:
    the test images stay unseen, so the accuracy measured on them is fair."""
    return data_split(config, dataset, "train", limit=count, seed=seed)[0]
