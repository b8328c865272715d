"""Config fields an mlpmixer keeps in a safetensors file's metadata, beside foreign key names.

A timm ``.safetensors`` holds tensors in timm's names; timm ignores the metadata, so the
settings shapes cannot tell (`sidecar.FIELDS`: GELU, epsilon, preprocessing, class names) are
written there, with a digest over them and the tensors (`sidecar.fields_digest`): edited
fields, or fields copied onto other weights, are refused on reading. A sidecar file does the
same for formats without metadata (``.npz``, torch pickles).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.config import MixerConfig
from .native import tensors_sha256
from .sidecar import config_fields, fields_digest, fields_from

STORED_FIELDS_KEY = "mlpmixer_fields"  # safetensors metadata key
STORED_DIGEST_KEY = "mlpmixer_fields_sha256"  # its digest over the tensors and the fields


def stored_metadata(config: MixerConfig, tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The safetensors metadata that keeps ``config``'s `FIELDS` with ``tensors`` (as written)."""
    fields = config_fields(config)
    return {
        STORED_FIELDS_KEY: json.dumps(fields),
        STORED_DIGEST_KEY: fields_digest(tensors_sha256(tensors), fields),
    }


def stored_fields(
    metadata: Mapping[str, str], source: Any, tensors: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Config fields an mlpmixer stored in a timm safetensors file's metadata (timm ignores it).

    ``tensors`` are the file's, as read (timm's names): the digest binds the fields to them,
    so edited fields, or fields copied onto other weights, are a `CheckpointError`.
    """
    if STORED_FIELDS_KEY not in metadata:
        return {}
    try:
        data = json.loads(metadata[STORED_FIELDS_KEY])
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{source}: unreadable {STORED_FIELDS_KEY} metadata ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: {STORED_FIELDS_KEY} metadata is not a mapping")
    hint = "save or convert the model again, or strip the metadata to load with timm's defaults"
    if STORED_DIGEST_KEY not in metadata:
        raise CheckpointError(
            f"{source}: {STORED_FIELDS_KEY} metadata without its digest (written by an earlier "
            f"mlpmixer, or stripped), so an edit cannot be detected; refusing to trust it — {hint}"
        )
    if metadata[STORED_DIGEST_KEY] != fields_digest(tensors_sha256(tensors), data):
        raise CheckpointError(
            f"{source}: the {STORED_FIELDS_KEY} metadata does not match the file (settings "
            f"edited, or tensors changed after saving); refusing to load with them — {hint}"
        )
    return fields_from(data, source)
