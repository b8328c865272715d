"""Metadata next to weight files whose format cannot hold it (``.npz``, torch pickles).

An official ``.npz`` or a timm ``.pth`` stores tensors only: converting a trained model to
one silently dropped its class names, mean/std and GELU variant (``predict`` then printed
``0 (0.868)`` instead of ``circle (0.925)``, and a tanh model came back as erf). The fields
that shapes cannot tell are written to ``<file>.mlpmixer.json`` beside it and read back when
the file is loaded. The sidecar records the SHA-256 of the weight file, so a sidecar left
next to other weights is ignored (with a warning) instead of mislabelling them.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..fileio import atomic_write_text
from ..models.config import MixerConfig

SUFFIX = ".mlpmixer.json"
# The config fields tensors-only formats cannot hold; kept in a sidecar, or in the metadata of
# a timm safetensors file.
FIELDS = ("gelu", "norm_eps", "mean", "std", "interpolation", "crop_pct", "class_names")
MAX_SIDECAR_BYTES = 16 * 2**20  # class names of a few thousand classes are well below


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_fields(config: MixerConfig) -> dict[str, Any]:
    """The `FIELDS` of ``config``, as JSON-ready values."""
    data = config.to_dict()
    return {k: data[k] for k in FIELDS}


def fields_from(data: dict[str, Any]) -> dict[str, Any]:
    """The `FIELDS` present in stored ``data``, JSON lists back to the config's tuples."""
    fields = {k: data[k] for k in FIELDS if k in data}
    for key in ("mean", "std", "class_names"):
        if isinstance(fields.get(key), list):
            fields[key] = tuple(fields[key])
    return fields


def write_sidecar(weights: Path, config: MixerConfig) -> Path:
    """Write the fields of ``config`` that ``weights`` cannot hold; returns the sidecar's path."""
    body = {
        "mlpmixer_sidecar": 1,
        "weights": weights.name,
        "weights_sha256": file_sha256(weights),
        **config_fields(config),
    }
    path = sidecar_path(weights)
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path


def read_sidecar(weights: Path) -> dict[str, Any]:
    """The config fields stored next to ``weights``; {} if there is no (matching) sidecar."""
    path = sidecar_path(weights)
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes is too large a sidecar")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: unreadable metadata sidecar ({err})") from err
    if not isinstance(data, dict) or data.get("mlpmixer_sidecar") != 1:
        raise CheckpointError(f'{path}: not an mlpmixer sidecar (no "mlpmixer_sidecar": 1)')
    if data.get("weights_sha256") != file_sha256(weights):
        warnings.warn(
            f"{path} belongs to other weights than {weights.name} (checksum differs); "
            "ignoring it: class names, mean/std and GELU fall back to the format's defaults",
            stacklevel=3,
        )
        return {}
    return fields_from(data)
