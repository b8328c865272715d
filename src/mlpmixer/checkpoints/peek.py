"""A checkpoint's class count read from its config or header, without reading weights or
building a model: what ``eval`` compares with the data set's before loading either (a 4-class
model on digits used to be refused only after both were loaded, 77 s under load)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
from safetensors import safe_open

from ..layout import CONFIG_JSON, NPZ_SUFFIX, SAFETENSORS_SUFFIX, SAFETENSORS_WEIGHTS
from .run_dir import is_run_dir, run_result_dir


def peek_num_classes(source: str | os.PathLike[str]) -> int | None:
    """The number of classes ``source`` predicts, from its config or tensor header alone;
    None when that takes loading (a hub id, a URL, a torch pickle) or the file is odd (the
    full load then says what is wrong)."""
    path = Path(source)
    try:
        if not path.exists():
            return None
        if is_run_dir(path):
            path = run_result_dir(path)
        if path.is_dir():
            return _from_config(path / CONFIG_JSON) or _from_safetensors(path / SAFETENSORS_WEIGHTS)
        if path.suffix == SAFETENSORS_SUFFIX:
            return _from_safetensors(path)
        if path.suffix == NPZ_SUFFIX:
            return _from_npz(path)
    except Exception:  # anything unusual is for the real loader to report, by name
        return None
    return None


def _from_config(path: Path) -> int | None:
    if not path.is_file() or path.stat().st_size > 2**20:
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("num_classes")
    return value if isinstance(value, int) else None


def _from_safetensors(path: Path) -> int | None:
    if not path.is_file():
        return None
    with safe_open(path, framework="pt") as f:
        config = (f.metadata() or {}).get("config")
        if config is not None:
            value = json.loads(config).get("num_classes")
            return value if isinstance(value, int) else None
        if "head.weight" in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
            return int(f.get_slice("head.weight").get_shape()[0])  # timm and ours: (classes, dim)
    return None


def _from_npz(path: Path) -> int | None:
    """The official layout's ``head/kernel`` is (dim, classes); only its .npy header is read."""
    with zipfile.ZipFile(path) as archive, archive.open("head/kernel.npy") as member:
        major, _ = np.lib.format.read_magic(member)
        read = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read(member)
    return int(shape[-1])
