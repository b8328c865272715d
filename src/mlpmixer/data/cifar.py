"""CIFAR-10 and CIFAR-100 from the official "python version" archives.

The archive holds pickled dicts of NumPy arrays. Unpickling can run arbitrary code, so the
batches are read with an unpickler that only admits the NumPy names needed to rebuild an
array (`numpy.ndarray`, `numpy.dtype` and the reconstruct helper, plus ``_codecs.encode`` for
bytes) and refuses everything else with a `DataError`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .fetch import check_md5, fetch, safe_extract

URL_BASE = "https://www.cs.toronto.edu/~kriz/"
VARIANTS = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": "labels",
        "names_key": "label_names",
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": "fine_labels",
        "names_key": "fine_label_names",
    },
}
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR batch file as a dict with str keys; refuses pickles with foreign objects."""
    try:
        data = path.read_bytes()
        batch = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataError(f"{path}: not a CIFAR python batch ({err})") from err
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR python batch (a {type(batch).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def detect_variant(directory: Path) -> str | None:
    """ "cifar10" / "cifar100" if ``directory`` holds that archive or its extracted folder."""
    for name, spec in VARIANTS.items():
        if (directory / spec["folder"]).is_dir() or (directory / spec["archive"]).is_file():
            return name
        if directory.name == spec["folder"] and (directory / spec["meta"]).is_file():
            return name
    return None


def _batch_folder(directory: Path, variant: str, download: bool) -> Path:
    spec = VARIANTS[variant]
    if directory.name == spec["folder"] and (directory / spec["meta"]).is_file():
        return directory
    folder = directory / spec["folder"]
    if folder.is_dir():
        return folder
    archive = directory / spec["archive"]
    if archive.is_file():
        check_md5(archive, spec["md5"])
    elif download:
        fetch(URL_BASE + spec["archive"], archive, spec["md5"])
    else:
        raise DataError(
            f"{variant}: neither {folder} nor {archive} exists; download "
            f"{URL_BASE + spec['archive']} and put it at {archive}"
        )
    safe_extract(archive, directory)
    if not folder.is_dir():
        raise DataError(f"{archive}: the archive has no {spec['folder']}/ folder")
    return folder


def _read_split(
    folder: Path, spec: dict[str, Any], split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in spec[split]:
        batch = read_batch(folder / name)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            targets = np.asarray(batch[spec["label_key"]], dtype=np.int64)
        except (KeyError, ValueError) as err:
            raise DataError(f"{folder / name}: unexpected CIFAR batch content ({err})") from err
        images.append(data)
        labels.append(targets)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def load_cifar_arrays(
    directory: Path, variant: str, split: str, download: bool
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], tuple[str, ...]]:
    """({"train": ..., split: ...} uint8 (N, 3, 32, 32) + int64 labels, class names)."""
    spec = VARIANTS[variant]
    folder = _batch_folder(directory, variant, download)
    meta = read_batch(folder / spec["meta"])
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[spec["names_key"]])
    arrays = {part: _read_split(folder, spec, part) for part in {"train", split}}
    return arrays, names
