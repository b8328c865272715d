"""The project's own checkpoint format: safetensors weights plus a JSON config.

Two shapes of the same format:

* a directory in the Hugging Face hub layout — ``config.json`` + ``model.safetensors`` —
  which is what ``save_pretrained`` writes and what ``from_pretrained`` reads locally or
  from the hub;
* a single ``.safetensors`` file whose metadata carries the config.

Both carry a SHA-256 of the tensors in the safetensors metadata, verified on load, so a
corrupted file is reported instead of silently giving wrong outputs. Nothing is unpickled.
Files are written atomically (see `mlpmixer.fileio`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..download import download_hub_repo, is_hub_id
from ..errors import CheckpointError, CheckpointNotFoundError
from ..fileio import atomic_path, atomic_write_text
from ..layout import CONFIG_JSON, SAFETENSORS_SUFFIX, SAFETENSORS_WEIGHTS
from ..models.config import MixerConfig

FORMAT_NAME = "mlpmixer"
FORMAT_VERSION = 1
CONFIG_FILE = CONFIG_JSON
WEIGHTS_FILE = SAFETENSORS_WEIGHTS
HUB_OPTIONS = ("revision", "cache_dir", "token", "local_files_only", "force_download")


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of all tensors, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def config_json(config: MixerConfig) -> str:
    body = {"architecture": FORMAT_NAME, "format_version": FORMAT_VERSION, **config.to_dict()}
    return json.dumps(body, indent=2, sort_keys=False) + "\n"


def write_native(
    path: str | os.PathLike[str], config: MixerConfig, state: Mapping[str, torch.Tensor]
) -> Path:
    """Write ``state`` and ``config``: a ``.safetensors`` path is one file, anything else a directory."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    metadata = {"format": FORMAT_NAME, "sha256": tensors_sha256(tensors)}
    if path.suffix == SAFETENSORS_SUFFIX:
        metadata["config"] = config_json(config)
        weights = path
    else:
        path.mkdir(parents=True, exist_ok=True)
        weights = path / WEIGHTS_FILE
    with atomic_path(weights) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    if weights is not path:
        atomic_write_text(path / CONFIG_FILE, config_json(config))
    return path


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; corrupt or truncated files raise `CheckpointError`."""
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    return tensors, metadata


def verify_checksum(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    expected = metadata.get("sha256")
    if expected is not None and tensors_sha256(tensors) != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch — the weights were modified or corrupted after saving"
        )


def parse_config(text: str, source: Any) -> dict[str, Any]:
    """The `MixerConfig` fields of a config.json text (format keys removed, version checked)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: config is not valid JSON ({err})") from err
    if not isinstance(data, dict) or data.get("architecture") != FORMAT_NAME:
        raise CheckpointError(f'{source}: not an mlpmixer config (no "architecture": "mlpmixer")')
    version = data.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: format_version {version!r} is not supported (this mlpmixer reads "
            f"{FORMAT_VERSION}); upgrade mlpmixer"
        )
    data.pop("architecture")
    return data


def is_native_dir(path: Path) -> bool:
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        return False
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("architecture") == FORMAT_NAME
    except (json.JSONDecodeError, OSError, AttributeError, UnicodeDecodeError):
        return False


def read_native(
    name_or_path: str | os.PathLike[str], **hub_options: Any
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config fields, state dict) from a directory, a ``.safetensors`` file or a hub repo id."""
    path = Path(name_or_path)
    if not path.exists():
        if not is_hub_id(str(name_or_path)):
            raise CheckpointNotFoundError(f"no such checkpoint: {name_or_path}")
        path = download_hub_repo(str(name_or_path), **hub_options)
    if path.is_dir():
        if not is_native_dir(path):
            raise CheckpointError(
                f"{path}: not an mlpmixer checkpoint directory (needs {CONFIG_FILE} with "
                f'"architecture": "mlpmixer" and {WEIGHTS_FILE})'
            )
        tensors, metadata = read_safetensors(path / WEIGHTS_FILE)
        config = parse_config((path / CONFIG_FILE).read_text(), path / CONFIG_FILE)
        verify_checksum(path / WEIGHTS_FILE, tensors, metadata)
        return config, tensors
    return native_file_contents(path, *read_safetensors(path))


def native_file_contents(
    path: Path, tensors: dict[str, torch.Tensor], metadata: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config fields, state dict) of a single-file checkpoint already read with
    `read_safetensors`: the config from its metadata, the checksum verified."""
    if "config" not in metadata:
        raise CheckpointError(
            f"{path}: safetensors file without an mlpmixer config in its metadata"
        )
    config = parse_config(metadata["config"], path)
    verify_checksum(path, tensors, metadata)
    return config, tensors
