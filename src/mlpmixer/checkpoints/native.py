"""The project's own checkpoint format: safetensors weights plus a JSON config.

Two shapes of the same format:

* a directory in the Hugging Face hub layout — ``config.json`` + ``model.safetensors`` —
  which is what ``save_pretrained`` writes and what ``from_pretrained`` reads locally or
  from the hub;
* a single ``.safetensors`` file whose metadata carries the config.

Both carry, in the safetensors metadata, a SHA-256 of the tensors and one of the config
text; both are mandatory and verified on load, so a corrupted, edited or half-written
checkpoint is reported instead of silently giving wrong outputs (a bare state dict with
default preprocessing). Nothing is unpickled. Files are written atomically, and a
directory as a whole: it is built in a temporary folder, then renamed into place (see
`mlpmixer.fileio`), so a kill never leaves new weights next to an old or missing config.
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
from ..fileio import atomic_directory, atomic_path
from ..layout import CONFIG_JSON, SAFETENSORS_SUFFIX, SAFETENSORS_WEIGHTS
from ..models.config import MixerConfig
from .declared import check_declared, declared_tensors

FORMAT_NAME = "mlpmixer"
FORMAT_VERSION = 1
CONFIG_FILE = CONFIG_JSON
WEIGHTS_FILE = SAFETENSORS_WEIGHTS
MAX_CONFIG_BYTES = 16 * 2**20  # a config with 100k class names is ~2 MB
HUB_OPTIONS = ("revision", "cache_dir", "token", "local_files_only", "force_download")


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of all tensors, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


FORMAT_KEY = "format"  # config.json: {"format": "mlpmixer", "format_version": 1, ...fields}
OLD_FORMAT_KEY = "architecture"  # what earlier saves used; timm reads it as a model name


def config_json(config: MixerConfig) -> str:
    body = {FORMAT_KEY: FORMAT_NAME, "format_version": FORMAT_VERSION, **config.to_dict()}
    return json.dumps(body, indent=2, sort_keys=False) + "\n"


def names_this_format(data: Any) -> bool:
    """Whether a parsed config.json says it is ours (the current key, or the old one)."""
    return isinstance(data, dict) and FORMAT_NAME in (
        data.get(FORMAT_KEY),
        data.get(OLD_FORMAT_KEY),
    )


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_native(
    path: str | os.PathLike[str],
    config: MixerConfig,
    state: Mapping[str, torch.Tensor],
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``state`` and ``config``: a ``.safetensors`` path is one file, anything else a directory.

    ``extra_files`` (name -> text, e.g. a model card) go into the directory with them.
    """
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    text = config_json(config)
    metadata = {
        "format": FORMAT_NAME,
        "sha256": tensors_sha256(tensors),
        "config_sha256": text_sha256(text),
    }
    if path.suffix == SAFETENSORS_SUFFIX:
        metadata["config"] = text
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
        return path
    with atomic_directory(path) as tmp:
        save_file(tensors, tmp / WEIGHTS_FILE, metadata=metadata)
        (tmp / CONFIG_FILE).write_text(text, encoding="utf-8")
        for name, body in (extra_files or {}).items():
            (tmp / name).write_text(body, encoding="utf-8")
    return path


def read_safetensors(
    path: Path, config_text: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; corrupt or truncated files raise `CheckpointError`.

    A native file's header is checked against its config (``config_text``, a folder's
    ``config.json``, or the config in the file's own metadata) before any tensor is read
    (`check_declared`).
    """
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            if config_text is None and metadata.get("format") == FORMAT_NAME:
                config_text = metadata.get("config")
            fields = _fields_or_none(config_text, path)
            if fields is not None:
                check_declared(path, declared_tensors(f), fields)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    return tensors, metadata


def _fields_or_none(text: str | None, path: Path) -> dict[str, Any] | None:
    """The config fields of ``text``; None when there is none or it is invalid (refused later,
    with the message that names what is wrong)."""
    if text is None:
        return None
    try:
        return parse_config(text, path)
    except CheckpointError:
        return None


def verify_checksum(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], config_text: str
) -> None:
    """Both checksums are mandatory: a file without them is refused, not trusted."""
    for key in ("sha256", "config_sha256"):
        if key not in metadata:
            raise CheckpointError(
                f"{path}: mlpmixer checkpoint without its {key} checksum (stripped, or written "
                "by an mlpmixer before 0.1 that did not checksum the config); refusing to trust "
                "it — save the model again with model.save()/save_pretrained()"
            )
    if tensors_sha256(tensors) != metadata["sha256"]:
        raise CheckpointError(
            f"{path}: checksum mismatch — the weights were modified or corrupted after saving"
        )
    if text_sha256(config_text) != metadata["config_sha256"]:
        raise CheckpointError(
            f"{path}: checksum mismatch — the config was modified or corrupted after saving "
            "(or belongs to other weights)"
        )


def parse_config(text: str, source: Any) -> dict[str, Any]:
    """The `MixerConfig` fields of a config.json text (format keys removed, version checked)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: config is not valid JSON ({err})") from err
    except RecursionError as err:  # "[[[[..." nested deeper than Python's stack
        raise CheckpointError(f"{source}: config is nested too deeply to be a config") from err
    if not names_this_format(data):
        raise CheckpointError(f'{source}: not an mlpmixer config (no "format": "mlpmixer")')
    version = data.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: format_version {version!r} is not supported (this mlpmixer reads "
            f"{FORMAT_VERSION}); upgrade mlpmixer"
        )
    for key in (FORMAT_KEY, OLD_FORMAT_KEY):
        data.pop(key, None)
    return data


def weights_are_native(weights: Path) -> bool:
    """Whether a safetensors file was written by `write_native` (its metadata says so)."""
    try:
        with safe_open(weights, framework="pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT_NAME
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return False


def is_native_dir(path: Path) -> bool:
    """A folder in this format: its weights say so, or its config does (then both must be valid)."""
    if (path / WEIGHTS_FILE).is_file() and weights_are_native(path / WEIGHTS_FILE):
        return True
    if not (path / CONFIG_FILE).is_file():
        return False
    try:
        if (path / CONFIG_FILE).stat().st_size > MAX_CONFIG_BYTES:
            return True  # claimed by size alone; read_native names the limit
        return names_this_format(json.loads((path / CONFIG_FILE).read_text()))
    except (json.JSONDecodeError, OSError, UnicodeDecodeError, RecursionError):
        return False


def _read_config_text(path: Path) -> str:
    config = path / CONFIG_FILE
    if config.exists() and not config.is_file():  # a FIFO would block the read
        raise CheckpointError(f"{config}: not a regular file (a FIFO, device or folder)")
    if not config.is_file():
        raise CheckpointError(
            f"{path}: an mlpmixer model folder without {CONFIG_FILE} (an interrupted save, or "
            "the file was deleted); refusing to guess the architecture and preprocessing — "
            "restore the file or save the model again"
        )
    size = config.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{config}: {size:,} bytes is larger than the limit of {MAX_CONFIG_BYTES:,} for a "
            "model config"
        )
    try:
        return config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config}: cannot read the model config ({err})") from err


def read_native(
    name_or_path: str | os.PathLike[str], **hub_options: Any
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config fields, state dict) from a directory, a ``.safetensors`` file or a hub repo id."""
    path = Path(name_or_path)
    if not path.exists():
        if not is_hub_id(str(name_or_path)):
            raise CheckpointNotFoundError(f"no such checkpoint: {name_or_path}")
        path = download_hub_repo(str(name_or_path), **hub_options)
    if not path.is_dir() and not path.is_file():
        raise CheckpointError(
            f"{path}: not a regular file; a checkpoint must be a file or a folder, not a "
            "device, FIFO or socket"
        )
    if path.is_dir():
        if not is_native_dir(path) or not (path / WEIGHTS_FILE).is_file():
            raise CheckpointError(
                f"{path}: not an mlpmixer checkpoint directory (needs {CONFIG_FILE} with "
                f'"format": "mlpmixer" and {WEIGHTS_FILE})'
            )
        text = _read_config_text(path)
        tensors, metadata = read_safetensors(path / WEIGHTS_FILE, text)
        config = parse_config(text, path / CONFIG_FILE)
        verify_checksum(path, tensors, metadata, text)
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
    verify_checksum(path, tensors, metadata, metadata["config"])
    return config, tensors
