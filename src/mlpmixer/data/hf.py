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

import math
import os
import random
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..download import MAX_BYTES_ENV, max_download_bytes, stall_seconds
from ..errors import DataError, DownloadError
from ..hub_reads import watched_call
from ..stream_watchdog import watch_stalls
from .images import check_pixel_count, pil_to_tensor, read_file, resize_image
from .transforms import SampleAugment, eval_sample, sample_rng, train_sample

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


HUB_WAITS = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")
NO_XET = "HF_HUB_DISABLE_XET"  # Xet files then come through huggingface_hub's client


def bound_hub_waits() -> None:
    """Give huggingface_hub's waits (metadata, each streamed read) the stall window of our own
    downloads (``$MLPMIXER_DOWNLOAD_STALL_S``, `mlpmixer.download`), unless the user set its
    variables: a silent server then ends the read instead of hanging it. A trickle passes
    every per-read timeout: `mlpmixer.hub_reads` meters every read of its client (so Xet
    files are fetched through it: ``$HF_HUB_DISABLE_XET``, unless set), and `stream_records`
    also bounds the wait for each streamed record."""
    window = max(1, math.ceil(stall_seconds()))
    constants = sys.modules.get("huggingface_hub.constants")
    for name, value in [(name, window) for name in HUB_WAITS] + [(NO_XET, True)]:
        if name not in os.environ:
            os.environ[name] = str(int(value))
            if constants is not None:  # already imported: it read the variables then
                setattr(constants, name, value)


def _load(spec: str, **options: Any) -> Any:
    """The data set's splits (a dict-like of split name -> table) of ``hf:NAME[:CONFIG]``.

    Every read ``datasets`` makes meanwhile (the whole download of a data set that is not
    streamed) has the stall window and size cap of our downloads (`mlpmixer.hub_reads`)."""
    bound_hub_waits()
    datasets = _datasets(spec)
    name, _, config = spec.removeprefix(PREFIX).partition(":")
    try:
        return watched_call(lambda: datasets.load_dataset(name, config or None, **options), spec)
    except (DownloadError, DataError):
        raise
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

    ``table``: a (streaming) ``datasets`` split; images are taken undecoded, as stored. Each
    record must arrive within the stall window (`mlpmixer.stream_watchdog.watch_stalls`,
    `DownloadError`, exit 1) and be within the download size cap (`DataError`, exit 2).
    """
    image, label = _columns(table.features, spec)
    names = list(table.features[label].names)
    from datasets import Image as ImageFeature

    raw = table.cast_column(image, ImageFeature(decode=False))

    cap = max_download_bytes()

    def rows() -> Iterator[tuple[bytes, str | None, int, str]]:
        # the stall window reaches into datasets' reader: a trickle or a stuck read ends
        # with one line (exit 1) instead of hanging the pack (mlpmixer.stream_watchdog)
        for i, row in enumerate(watch_stalls(raw, f"{spec}: split {split_name!r}")):
            value = row[image] or {}
            data = value.get("bytes")
            if data is None and value.get("path"):
                data = read_file(Path(value["path"]))  # a regular file only (not a FIFO)
            if data is None:
                raise DataError(f"{spec}: split {split_name!r} sample {i} has no image")
            if len(data) > cap:  # the size cap of every remote read (mlpmixer.download)
                raise DataError(
                    f"{spec}: split {split_name!r} sample {i} has {len(data):,} bytes, more "
                    f"than the limit of {cap:,} (${MAX_BYTES_ENV} raises it)"
                )
            yield data, value.get("path"), row[label], f"{split_name} #{i}"

    return names, rows()


SHUFFLE_BUFFER = 10_000  # records held at once to shuffle a streamed training split

T = TypeVar("T")


def buffer_shuffled(items: Iterable[T], seed: int, size: int = SHUFFLE_BUFFER) -> Iterator[T]:
    """``items`` in a seeded random order, holding at most ``size`` of them at once: once the
    buffer is full, each new item takes the place of a random one, which is yielded."""
    rng = random.Random(seed)
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer


def hf_records(
    spec: str, split: str, explicit: str | None, seed: int
) -> tuple[list[str], Iterator[tuple[bytes, str | None, int, str]]]:
    """Records of one split read with ``streaming=True`` (nothing stored whole), for packing.

    The training split is shuffled: ``datasets`` shuffles the order of its source files
    (seeded), then `buffer_shuffled` the records with a buffer of `SHUFFLE_BUFFER`. The buffer
    is ours, above the stall window of `stream_records`: ``datasets``' own buffer reads
    thousands of records between two it hands out, which no per-record window can tell from a
    stalled server.
    """
    splits = _load(spec, streaming=True)
    wanted = choose_split(spec, list(splits), split, explicit)
    table = splits[wanted]
    if split != "train":
        return stream_records(table, spec, wanted)
    names, rows = stream_records(table.shuffle(seed=seed, buffer_size=1), spec, wanted)
    return names, buffer_shuffled(rows, seed)


class HFImageDataset(Dataset):
    """Wraps a ``datasets.Dataset``: items are (image (C, H, W), label).

    Images are float32 in [0, 1] by default (the public API), or uint8 as
    `mlpmixer.data.folder.ImageFileDataset` gives them: `eval_sample` after `use_uint8`,
    `train_sample` seeded by (seed, epoch, index) after `set_train_augment` (keys may then be
    ``(epoch, index)`` pairs), so training crops, flips and RandAugments in the workers.
    """

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
        self.name = name
        self.uint8 = False
        self.augment: SampleAugment | None = None
        self.seed = 0

    def use_uint8(self) -> None:
        """Return uint8 (C, H, W) images from now on (see the class docstring)."""
        self.uint8 = True

    def set_train_augment(self, augment: SampleAugment, seed: int) -> None:
        """Worker-side training augmentation (implies uint8 output)."""
        self.augment, self.seed, self.uint8 = augment, seed, True

    def __len__(self) -> int:
        return len(self.table)

    def _pixels(self, image: Any, epoch: int, index: int) -> torch.Tensor:
        size, where = self.img_size, f"{self.name} sample {index}"
        try:  # datasets opens images lazily: the header is known, no pixel decoded yet
            check_pixel_count(image.width, image.height)
        except Image.DecompressionBombError as err:
            raise DataError(f"cannot read image {where}: {err}, more than PIL's limit") from err
        if not self.uint8:
            tensor = pil_to_tensor(image, self.in_chans)
            return resize_image(tensor, size, self.crop_pct, self.interpolation)
        if self.augment is None:
            return eval_sample(image, size, self.crop_pct, self.in_chans, self.interpolation, where)
        rng = sample_rng(self.seed, epoch, index)
        return train_sample(
            image, size, self.augment, rng, self.in_chans, self.interpolation, where
        )

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        row = self.table[int(index)]
        return self._pixels(row[self.image_column], epoch, int(index)), int(row[self.label_column])
