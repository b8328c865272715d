"""Class-per-folder image directories (the "ImageFolder" layout).

``DIR/train/<class>/*.jpg`` + ``DIR/val/<class>/*.jpg`` (or ``test/``), or ``DIR/<class>/*``
split into train/test by a seeded, stratified ``val_fraction``. Classes are the sorted
folder names of the training part. Images are decoded in ``__getitem__`` (DataLoader
workers).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .arrays import stratified_split
from .images import IMAGE_EXTENSIONS, load_image, not_a_file, open_image, resize_image
from .transforms import WorkerSamples

log = logging.getLogger(__name__)

HELD_OUT_NAMES = ("val", "validation", "test")
SKIP_HINT = "to leave unreadable files out instead: mlpmixer train --skip-bad-images"
STATS_SAMPLE = 128  # images decoded to estimate mean/std


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(directory: Path) -> list[Path]:
    """Every entry with an image suffix but folders: FIFOs, device links and broken links
    too, so that they are refused or listed by name (`not_a_file`), never silently dropped."""
    return sorted(
        p for p in directory.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir() and not p.name.startswith(".")
    )  # fmt: skip


def refuse_special_files(files: list[Path]) -> None:
    """`DataError` naming the first path that is not a regular file (without
    ``--skip-bad-images``: reading it would block or never end)."""
    for path in files:
        if kind := not_a_file(path):
            raise DataError(f"{path} is {kind}; remove it, or {SKIP_HINT.removeprefix('to ')}")


def scan(directory: Path, class_names: list[str]) -> tuple[list[Path], list[int]]:
    """(files, labels) of ``directory/<class>/...`` for the given classes."""
    files, labels = [], []
    known = set(class_names)
    for class_dir in _class_dirs(directory):
        if class_dir.name not in known:
            raise DataError(
                f"{class_dir}: class {class_dir.name!r} is not among the training classes "
                f"{sorted(known)}"
            )
        found = _images_in(class_dir)
        files += found
        labels += [class_names.index(class_dir.name)] * len(found)
    return files, labels


def held_out_dir(directory: Path) -> Path | None:
    for name in HELD_OUT_NAMES:
        if (directory / name).is_dir():
            return directory / name
    return None


def is_image_folder(directory: Path) -> bool:
    return directory.is_dir() and bool(_class_dirs(directory))


def folder_split(
    directory: Path, split: str, val_fraction: float, seed: int
) -> tuple[list[Path], list[int], list[Path], list[int], list[str]]:
    """(train files, train labels, split files, split labels, class names)."""
    train_dir = directory / "train" if (directory / "train").is_dir() else directory
    class_names = [d.name for d in _class_dirs(train_dir)]
    if not class_names:
        raise DataError(f"{train_dir}: no class folders (expected {train_dir}/<class>/<image>)")
    files, labels = scan(train_dir, class_names)
    if not files:
        raise DataError(f"{train_dir}: no images with extensions {', '.join(IMAGE_EXTENSIONS)}")
    present = set(labels)
    empty = [name for i, name in enumerate(class_names) if i not in present]
    if empty:  # a class without examples cannot be learned, and would skew the split
        raise DataError(
            f"{train_dir}: class folder(s) without images: {', '.join(empty)}; add images "
            f"(extensions {', '.join(IMAGE_EXTENSIONS)}) or remove the folder(s)"
        )
    held_out = held_out_dir(directory) if train_dir != directory else None
    if held_out is not None:
        test_files, test_labels = scan(held_out, class_names)
        if not test_files:
            raise DataError(f"{held_out}: no images")
    else:
        train_idx, test_idx = stratified_split(np.asarray(labels), val_fraction, seed)
        test_files = [files[i] for i in test_idx]
        test_labels = [labels[i] for i in test_idx]
        files, labels = [files[i] for i in train_idx], [labels[i] for i in train_idx]
    if split == "train":
        return files, labels, files, labels, class_names
    return files, labels, test_files, test_labels, class_names


def unreadable_reason(path: Path) -> str | None:
    """Why ``path`` is not a usable image, from its header and PIL's ``verify`` (no decoding).

    Catches non-images, empty and most truncated or corrupt files, zero-size images and
    decompression bombs; a file that passes can still fail to decode (the dataset then skips
    it at load time, see `ImageFileDataset`).
    """
    try:
        with open_image(path) as image:  # refuses FIFOs, devices, bombs, zero sizes first
            image.verify()
    except DataError as err:
        return str(err).removeprefix(f"cannot read image {path}: ")
    return None


def drop_unreadable(
    files: list[Path], labels: list[int]
) -> tuple[list[Path], list[int], list[str]]:
    """(readable files, their labels, ``"PATH: reason"`` of each file left out)."""
    kept_files, kept_labels, skipped = [], [], []
    for path, label in zip(files, labels, strict=True):
        reason = unreadable_reason(path)
        if reason is None:
            kept_files.append(path)
            kept_labels.append(label)
        else:
            skipped.append(f"{path}: {reason}")
    return kept_files, kept_labels, skipped


class ImageFileDataset(WorkerSamples, Dataset):
    """Image files + labels; ``__getitem__`` decodes, crops and resizes one file.

    Output: float32 (C, H, W) in [0, 1] by default (the public API), or uint8 (C, H, W) after
    `use_uint8` (the training and evaluation loaders: a quarter of the bytes to collate, pin
    and copy; normalisation happens on the device). With `set_train_augment` the uint8 output
    is the training sample of `mlpmixer.data.transforms.train_sample` (inception crop, flip,
    RandAugment), drawn from a generator seeded by (seed, epoch, index): keys may then be
    ``(epoch, index)`` pairs (`mlpmixer.data.loading.EpochKeyedBatches`); a plain index means
    epoch 0. Without it the uint8 output is `eval_sample` (resize + centre crop).
    """

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        in_chans: int,
        img_size: tuple[int, int],
        crop_pct: float = 1.0,
        interpolation: str = "bilinear",
        skip_bad: bool = False,
    ) -> None:
        self.files = files
        self.labels = labels
        self.in_chans = in_chans
        self.img_size = tuple(img_size)
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.skip_bad = skip_bad  # a file that fails to decode is replaced by the next one

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int, epoch: int, index: int) -> torch.Tensor:
        path = self.files[i]
        if not self.uint8:
            image = load_image(path, self.in_chans)
            return resize_image(image, self.img_size, self.crop_pct, self.interpolation)
        return self.worker_sample(path, epoch, index, self.img_size, self.crop_pct, self.in_chans,
                                  self.interpolation)  # fmt: skip

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            try:
                return self._load(i, epoch, index), self.labels[i]
            except DataError as err:
                if not self.skip_bad:
                    raise DataError(f"{err}; {SKIP_HINT}") from err
                # deterministic substitute (the next file), so batches keep their size and
                # a resumed run sees the same data; said once per file, in every worker
                log.warning("skipping unreadable image: %s", err)
        raise DataError("no readable image left in the data set")


def sample_images(dataset: Dataset, count: int = STATS_SAMPLE, seed: int = 0) -> torch.Tensor:
    """(n, C, H, W) images of a seeded sample of ``dataset`` (for mean/std estimates)."""
    n = len(dataset)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(n, generator=generator)[: min(count, n)].tolist()
    return torch.stack([dataset[i][0] for i in sorted(chosen)])
