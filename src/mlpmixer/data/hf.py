"""Hugging Face ``datasets`` (optional extra ``hf``): ``hf:NAME`` or ``hf:NAME:CONFIG``.

The image column is the first feature of type ``Image`` and the label column the first of
type ``ClassLabel`` (their names are the class names). The held-out split is the data
set's ``validation`` split if it has one, else ``test`` (ImageNet-1k's ``test`` split is
unlabelled), or the split named by ``data.train_split`` / ``data.val_split``; a split whose
labels are missing (-1) is refused. Images are decoded lazily in ``__getitem__``, i.e. in the
DataLoader workers. Large data sets: ``mlpmixer data pack hf:NAME OUT`` reads them with
``streaming=True`` into shards (`mlpmixer.data.pack`).
"""

from __future__ import annotations

from collections.abc import Iterator
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


HELD_OUT_ORDER = ("validation", "test")  # ImageNet-1k's test split is unlabelled (-1)
NO_LABEL = -1  # what the hub stores for a sample without a label


def _datasets(spec: str) -> Any:
    try:
        import datasets
    except ImportError as err:
        raise DataError(
            f"{spec} needs the Hugging Face datasets package: pip install 'mlpmixer[hf]'"
        ) from err
    return datasets


def choose_split(spec: str, available: list[str], split: str, explicit: str | None) -> str:
    """The data set's split to read for ours (``"train"``/``"test"``).

    ``explicit`` (``data.train_split`` / ``data.val_split``) wins; otherwise ``train``, and for
    the held-out split the first of ``validation``, ``test`` the data set has.
    """
    if explicit is not None:
        wanted = explicit
    elif split == "train":
        wanted = "train"
    else:
        wanted = next((s for s in HELD_OUT_ORDER if s in available), "validation")
    if wanted not in available:
        key = "data.train_split" if split == "train" else "data.val_split"
        raise DataError(
            f"{spec}: no split {wanted!r} (has {sorted(available)}); choose one with --set {key}=NAME"
        )
    return wanted


def check_labels(labels: Any, spec: str, split_name: str) -> None:
    """`DataError` if a split has no labels (all -1, as ImageNet's test split) or some missing."""
    values = torch.as_tensor(list(labels))
    if values.numel() == 0:
        raise DataError(f"{spec}: split {split_name!r} is empty")
    missing = (values < 0).nonzero().flatten()
    if missing.numel() == values.numel():
        raise DataError(
            f"{spec}: split {split_name!r} has no labels (every label is {NO_LABEL}); choose a "
            "labelled split with --set data.val_split=NAME (or data.train_split)"
        )
    if missing.numel():
        raise DataError(
            f"{spec}: split {split_name!r}: sample {int(missing[0])} has no label ({NO_LABEL}), "
            f"and {missing.numel()} in all"
        )


def _load(spec: str, **options: Any) -> Any:
    """The data set's splits (a dict-like of split name -> table) of ``hf:NAME[:CONFIG]``."""
    datasets = _datasets(spec)
    name, _, config = spec.removeprefix(PREFIX).partition(":")
    try:
        return datasets.load_dataset(name, config or None, **options)
    except Exception as err:  # the library raises many types (offline, missing, auth)
        raise DataError(f"{spec}: cannot load the Hugging Face data set ({err})") from err


def load_hf_split(spec: str, split: str, explicit: str | None = None, **load_options: Any) -> Any:
    """The ``datasets.Dataset`` of ``hf:NAME[:CONFIG]`` for ``split`` ("train"/"test").

    ``explicit`` names the data set's own split (see `choose_split`); its labels are checked.
    """
    splits = _load(spec, **load_options)
    wanted = choose_split(spec, list(splits), split, explicit)
    table = splits[wanted]
    _, label = _columns(table.features, spec)
    check_labels(table[label], spec, wanted)
    return table


def stream_records(
    table: Any, spec: str, split_name: str
) -> tuple[list[str], Iterator[tuple[bytes, str | None, int, str]]]:
    """(class names, (encoded image bytes, file name or None, label, "split #i")) of a table.

    ``table``: a (streaming) ``datasets`` split; images are taken undecoded, as stored.
    """
    image, label = _columns(table.features, spec)
    names = list(table.features[label].names)
    from datasets import Image as ImageFeature

    raw = table.cast_column(image, ImageFeature(decode=False))

    def rows() -> Iterator[tuple[bytes, str | None, int, str]]:
        for i, row in enumerate(raw):
            value = row[image] or {}
            data = value.get("bytes")
            if data is None and value.get("path"):
                with open(value["path"], "rb") as handle:
                    data = handle.read()
            if data is None:
                raise DataError(f"{spec}: split {split_name!r} sample {i} has no image")
            yield data, value.get("path"), row[label], f"{split_name} #{i}"

    return names, rows()


def hf_records(
    spec: str, split: str, explicit: str | None, seed: int
) -> tuple[list[str], Iterator[tuple[bytes, str | None, int, str]]]:
    """Records of one split read with ``streaming=True`` (nothing stored whole), for packing.

    The training split is shuffled with a seeded buffer of 10,000 samples.
    """
    splits = _load(spec, streaming=True)
    wanted = choose_split(spec, list(splits), split, explicit)
    table = splits[wanted]
    if split == "train":
        table = table.shuffle(seed=seed, buffer_size=10_000)
    return stream_records(table, spec, wanted)


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
