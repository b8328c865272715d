"""This project's format (`checkpoints.native`): safetensors weights with the whole config,
as a hub-layout folder (config.json + model.safetensors) or one ``.safetensors`` file whose
metadata carries the config. It keeps every setting; checksums guard both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import ConfigError
from ...layout import NPZ_SUFFIX, SAFETENSORS_SUFFIX, TORCH_SUFFIXES
from ...models.config import MixerConfig
from ...models.spec import config_from_dict
from .. import native
from .base import Candidate, Checkpoint, CheckpointFormat


def _detect(candidate: Candidate) -> bool:
    if candidate.path.is_dir():
        return native.is_native_dir(candidate.path)
    return (
        candidate.path.suffix == SAFETENSORS_SUFFIX
        and candidate.metadata.get("format") == native.FORMAT_NAME
    )


def _read(candidate: Candidate) -> Checkpoint:
    if candidate.path.is_dir():
        config, state = native.read_native(candidate.path)
    else:  # refused if its config or checksums lack
        config, state = native.native_file_contents(candidate.path, *candidate.contents)
    return Checkpoint(FORMAT.name, config_from_dict(config), state, candidate.source)


def _write(path: Path, config: MixerConfig, state: Mapping[str, torch.Tensor]) -> None:
    # a folder named m.pth or m.npz was written, then its sidecar failed (IsADirectoryError)
    if path.suffix in (NPZ_SUFFIX, *TORCH_SUFFIXES):
        other = "official" if path.suffix == NPZ_SUFFIX else "timm or state_dict"
        raise ConfigError(
            f"the native format is a folder or a .safetensors file, got {path} (a "
            f"{path.suffix} file is the {other} format's); save as {other}, or choose another name"
        )
    native.write_native(path, config, state)  # looked up now: tests replace it


FORMAT = CheckpointFormat(name="native", detect=_detect, read=_read, write=_write)
