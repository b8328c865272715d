"""Hugging Face ``datasets`` (optional extra ``hf``): ``hf:NAME`` or ``hf:NAME:CONFIG``.

The image column is the first feature of type ``Image`` and the label column the first of
type ``ClassLabel`` (their names are the class names). The test split is ``test`` if the data
set has one, else ``validation``. Images are decoded lazily in ``__getitem__``, i.e. in the
DataLoader workers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .images import pil_to_tensor, resize_image

PREFIX = "hf:"


def _columns(features: Any, name: str) -> tuple[str, str]:
    from datasets import ClassLabel
    from datasets import Image as ImageFeature

    image = next((k for k, v in features.items() if isinstance(v, ImageFeature)), None)
    label = next((k for k, v in features.items() if isinstance(v, ClassLabel)), None)
    if image is None or label is None:
        raise DataError(
            f"{name}: need an Image column and a ClassLabel column, found features "
            f"{ {k: type(v).__name__ for k, v in features.items()} }"
        )
    return image, label


def load_hf_split(spec: str, split: str, **load_options: Any) -> Any:
    """The ``datasets.Dataset`` of ``hf:NAME[:CONFIG]`` for ``split`` ("train"/"test")."""
    try:
        import datasets
    except ImportError as err:
        raise DataError(
            f"{spec} needs the Hugging Face datasets package: pip install 'mlpmixer[hf]'"
        ) from err
    name, _, config = spec.removeprefix(PREFIX).partition(":")
    try:
        splits = datasets.load_dataset(name, config or None, **load_options)
    except Exception as err:  # the library raises many types (offline, missing, auth)
        raise DataError(f"{spec}: cannot load the Hugging Face data set ({err})") from err
    wanted = (
        "train"
        if split == "train"
        else next((s for s in ("test", "validation") if s in splits), None)
    )
    if wanted is None or wanted not in splits:
        raise DataError(f"{spec}: no {split!r} split (has {sorted(splits)})")
    return splits[wanted]


class HFImageDataset(Dataset):
    """Wraps a ``datasets.Dataset``: items are (float (C, H, W) in [0, 1], label)."""

    def __init__(
        self,
        table: Any,
        in_chans: int,
        img_size: tuple[int, int],
        crop_pct: float = 1.0,
        interpolation: str = "bilinear",
        name: str = "hf",
    ) -> None:
        self.table = table
        self.image_column, self.label_column = _columns(table.features, name)
        self.class_names = tuple(table.features[self.label_column].names)
        self.in_chans = in_chans
        self.img_size = tuple(img_size)
        self.crop_pct = crop_pct
        self.interpolation = interpolation

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.table[int(index)]
        image = pil_to_tensor(row[self.image_column], self.in_chans)
        image = resize_image(image, self.img_size, self.crop_pct, self.interpolation)
        return image, int(row[self.label_column])
