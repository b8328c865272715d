"""What can be known of a data set without loading it: does it exist, how many classes, how
many training images.

Commands used to learn these only once the data (and often a model) were loaded: ``eval`` of
a 4-class model on digits said "the model has 4 classes but digits has 10" after 77 s, an
unknown data set name was reported after 36 s, ``finetune`` with a batch of 512 on 128 images
after 95 s. `dataset_outline` answers from names, folder listings and shard indexes (reading
no image), so those refusals come before anything is built. ``None`` means "not known without
loading" (a Hugging Face data set, digits' split sizes): the full check still runs later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .build import _ALIASES, NAMED, dataset_directory
from .cifar import detect_variant
from .folder import folder_split, is_image_folder
from .hf import PREFIX as HF_PREFIX
from .idx import is_idx_dir
from .shards import is_shard_source, read_index

# The named sets' classes and training images (fixed by their definitions; digits and
# mnist5k are split here, and load in a second: their counts are left to the loader).
_NAMED_FACTS = {
    "digits": (10, None), "mnist5k": (10, None), "mnist": (10, 60000),
    "fashion-mnist": (10, 60000), "cifar10": (10, 50000), "cifar100": (100, 50000),
}  # fmt: skip


@dataclass(frozen=True)
class DataOutline:
    """``name`` as given; ``num_classes`` and ``train_images`` where known without loading."""

    name: str
    num_classes: int | None = None
    train_images: int | None = None


def dataset_outline(
    name_or_path: str | os.PathLike[str], val_fraction: float = 0.1, seed: int = 0
) -> DataOutline:
    """The `DataOutline` of what `build_dataset` would load; `DataError` (exit 2) for a name
    that is no data set, worded as `build_dataset` words it."""
    text = str(name_or_path)
    name = _ALIASES.get(text.lower(), text.lower())
    if text.startswith(HF_PREFIX):
        return DataOutline(text)
    if name in NAMED:
        return DataOutline(text, *_NAMED_FACTS[name])
    if is_shard_source(text):
        return _shard_outline(text)
    return _directory_outline(dataset_directory(text), text, val_fraction, seed)


def _shard_outline(text: str) -> DataOutline:
    if "://" in text:  # a remote index is read (and checked) by the loader, once
        return DataOutline(text)
    index = read_index(text)
    train = index.splits.get("train")
    count = sum(e.count for e in train) if train is not None else None
    return DataOutline(text, len(index.class_names), count)


def _directory_outline(path: Path, text: str, val_fraction: float, seed: int) -> DataOutline:
    if is_idx_dir(path):
        return DataOutline(text, 10, None)
    variant = detect_variant(path)
    if variant is not None:
        return DataOutline(text, *_NAMED_FACTS[variant])
    if is_image_folder(path):
        try:
            files, _, _, _, names = folder_split(path, "train", val_fraction, seed)
        except DataError:  # an empty class folder...: the loader words it
            return DataOutline(text)
        return DataOutline(text, len(names), len(files))
    raise DataError(
        f"{path}: not a data set directory; expected MNIST idx files, a CIFAR python archive "
        "(or its extracted folder), or class folders (DIR/<class>/* or DIR/train/<class>/*)"
    )
