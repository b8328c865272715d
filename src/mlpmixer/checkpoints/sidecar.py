"""Metadata next to weight files whose format cannot hold it (``.npz``, torch pickles).

An official ``.npz`` or a timm ``.pth`` stores tensors only: converting a trained model to
one silently dropped its class names, mean/std and GELU variant (``predict`` then printed
``0 (0.868)`` instead of ``circle (0.925)``, and a tanh model came back as erf). The fields
that shapes cannot tell are written to ``<file>.mlpmixer.json`` beside it and read back when
the file is loaded. Which fields is the family's config class's choice (`kept_names`): `FIELDS`
for `MixerConfig`, the whole config but its family for a zoo config (``untold_fields``: the
image size among them, which a hierarchical model's shapes cannot tell), checked on reading
by building that config.

The sidecar carries the SHA-256 of the weight file and a digest over that checksum and the
fields (`fields_digest`); the fields a timm ``.safetensors`` keeps in its metadata carry the
same kind of digest over its tensors. Both are mandatory and checked on load, as the native
format's checksums are: a sidecar next to other weights, or with an edited field (mean 0.9,
``gelu`` flipped), is refused with an error that says how to go on, never half-trusted. A
digest is not a signature: it catches edits, mix-ups and damage, not someone who recomputes
it on purpose.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_write_text
from ..models.config import MixerConfig
from ..models.spec import family_spec

SUFFIX = ".mlpmixer.json"
VERSION = 2  # 1: before the fields were covered by a digest (refused: it cannot be checked)
# The config fields tensors-only formats cannot hold; kept in a sidecar, or in the metadata of
# a timm safetensors file.
FIELDS = ("gelu", "norm_eps", "mean", "std", "interpolation", "crop_pct", "class_names")
MAX_SIDECAR_BYTES = 16 * 2**20  # class names of a few thousand classes are well below
DELETE_HINT = (
    "delete it to load the weights with the format's defaults (tanh GELU for .npz, erf for "
    "timm; mean/std 0.5; no class names), or convert the model again"
)


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def kept_names(family: Any) -> tuple[str, ...]:
    """The fields kept for ``family`` (None: a Mixer-style config): its config class's
    ``untold_fields`` where it declares them (the zoo's), else `FIELDS`."""
    if family is None:
        return FIELDS
    untold = getattr(family_spec(family).config_class, "untold_fields", None)
    return FIELDS if untold is None else untold()


def config_fields(config: MixerConfig) -> dict[str, Any]:
    """The fields of ``config`` that shapes cannot tell (`kept_names`; those its config has),
    as JSON-ready values; with ``family`` where its config class chooses them."""
    data = config.to_dict()
    names = kept_names(config.family)
    fields = {k: data[k] for k in names if k in data}
    return fields if names is FIELDS else {"family": config.family, **fields}


def fields_digest(weights_sha256: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 binding ``fields`` (JSON-ready) to the weights whose checksum is given.

    The fields are serialised canonically (sorted keys, no spaces), so the digest does not
    depend on how the file was indented, only on the values.
    """
    body = json.dumps(
        {"weights_sha256": weights_sha256, "fields": dict(fields)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def fields_from(data: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """The `FIELDS` present in stored ``data``, lists back to tuples, each value checked.

    A value the config would refuse (``"gelu": null``, ``"mean": "x"``, ``crop_pct`` 7) is a
    `CheckpointError` naming the file and the field, even when the digest matches.
    """
    if data.get("family") is not None:
        return _family_fields(data, source)
    fields = {k: data[k] for k in FIELDS if k in data}
    for key in ("mean", "std", "class_names"):
        if isinstance(fields.get(key), list):
            fields[key] = tuple(fields[key])
    _check_values(fields, source)
    return fields


def _stored_names(data: Mapping[str, Any], source: Any) -> tuple[str, ...]:
    """The field names stored ``data`` keeps (`kept_names` of its ``family``, with it)."""
    family = data.get("family")
    if family is None:
        return FIELDS
    try:
        return ("family", *kept_names(family))
    except ConfigError as err:
        raise CheckpointError(f"{source}: invalid stored setting: {err}") from err


def _family_fields(data: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """The fields of a family's whole config kept in ``data``, checked by building that config
    with its class (the values as it normalises them, ``family`` left out)."""
    fields = {k: data[k] for k in _stored_names(data, source) if k in data}
    try:
        config = family_spec(fields["family"]).config_class.from_dict(fields)
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: invalid stored setting: {err}") from err
    return {k: getattr(config, k) for k in fields if k != "family"}


def _check_values(fields: Mapping[str, Any], source: Any) -> None:
    """Validate ``fields`` with `MixerConfig`'s own checks, on a one-block stand-in model."""
    mean = fields.get("mean")
    names = fields.get("class_names")
    sized = {
        "in_chans": len(mean) if isinstance(mean, tuple) and mean else 1,
        "num_classes": len(names) if isinstance(names, tuple) else 1,
    }
    try:
        MixerConfig(
            img_size=1, patch_size=1, hidden_dim=1, num_blocks=1, tokens_mlp_dim=2,
            channels_mlp_dim=2, **sized, **fields,
        )  # fmt: skip
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: invalid stored setting: {err}") from err


def write_sidecar(weights: Path, config: MixerConfig) -> Path:
    """Write the fields of ``config`` that ``weights`` cannot hold; returns the sidecar's path."""
    weights_sha256 = file_sha256(weights)
    fields = config_fields(config)
    body = {
        "mlpmixer_sidecar": VERSION,
        "weights": weights.name,
        "weights_sha256": weights_sha256,
        **fields,
        "fields_sha256": fields_digest(weights_sha256, fields),
    }
    path = sidecar_path(weights)
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path


def read_sidecar(weights: Path) -> dict[str, Any]:
    """The config fields stored next to ``weights``; {} if there is no sidecar.

    A sidecar of other weights, with edited fields, or without its digest is a
    `CheckpointError` (see the module docstring).
    """
    path = sidecar_path(weights)
    if not os.path.lexists(path):
        return {}
    if not path.is_file():  # never opened: reading a FIFO would block, /dev/null reads empty
        raise CheckpointError(
            f"{path}: not a regular file ({_kind(path)}); a sidecar must be the JSON file "
            f"written next to the weights — {DELETE_HINT}"
        )
    data = _read_json(path)
    version = data.get("mlpmixer_sidecar")
    if version == 1:
        raise CheckpointError(
            f"{path}: a version-1 sidecar (from an earlier mlpmixer), whose fields no digest "
            f"covers, so an edit cannot be detected; refusing to trust it — {DELETE_HINT}"
        )
    if version != VERSION:
        raise CheckpointError(
            f'{path}: not an mlpmixer sidecar (no "mlpmixer_sidecar": {VERSION}, got {version!r})'
        )
    weights_sha256 = file_sha256(weights)
    if data.get("weights_sha256") != weights_sha256:
        raise CheckpointError(
            f"{path} belongs to other weights than {weights.name} (the file's checksum "
            f"differs: replaced or modified after the sidecar was written); {DELETE_HINT}"
        )
    fields = {k: data[k] for k in _stored_names(data, path) if k in data}
    if data.get("fields_sha256") != fields_digest(weights_sha256, fields):
        raise CheckpointError(
            f"{path}: its settings were modified after it was written (their digest "
            f"differs); refusing to load with edited class names, preprocessing or GELU — "
            f"{DELETE_HINT}"
        )
    return fields_from(fields, path)


def _kind(path: Path) -> str:
    """What ``path`` is instead of a regular file, in words (for the refusal)."""
    if path.is_symlink():
        target = os.readlink(path)
        return f"a link to {target}" if path.exists() else f"a broken link to {target}"
    if path.is_dir():
        return "a folder"
    if path.is_fifo():
        return "a FIFO"
    return "a device or socket"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes is too large a sidecar")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: unreadable metadata sidecar ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not an mlpmixer sidecar (not a JSON object)")
    return data
