"""What can be known of a data set without loading it: does it exist, how many classes, how
many training images.

Commands used to learn these only once the data (and often a model) were loaded: ``eval`` of
a 4-class model on digits said "the model has 4 classes but digits has 10" after 77 s, an
unknown data set name was reported after 36 s, ``finetune`` with a batch of 512 on 128 images
after 95 s. `dataset_outline` answers from names, folder listings and shard indexes (reading
no image; each source's `DataSource.outline`), so those refusals come before anything is
built. ``None`` means "not known without loading" (a Hugging Face data set, digits' split
sizes): the full check still runs later.
"""

from __future__ import annotations

import dataclasses
import os

from .build import find_source
from .source import DataOutline

__all__ = ["DataOutline", "dataset_outline"]


def dataset_outline(
    name_or_path: str | os.PathLike[str], val_fraction: float = 0.1, seed: int = 0
) -> DataOutline:
    """The `DataOutline` of what `build_dataset` would load; `DataError` (exit 2) for a name
    that is no data set, worded as `build_dataset` words it."""
    text = str(name_or_path)
    outline = find_source(text).outline(val_fraction, seed)
    return dataclasses.replace(outline, name=text)  # as given, not the canonical name
