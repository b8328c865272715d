"""A bare state dict with this package's key names (``torch.save(model.state_dict())``), as a
torch pickle (or a plain ``.safetensors``). Tensors only: a sidecar keeps the settings that
shapes cannot tell; without one, loading says that the default preprocessing is used.
Tried last: a file of another format's keys is that format's.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import ConfigError
from ...fileio import atomic_path
from ...layout import TORCH_SUFFIXES
from ...models.config import MixerConfig
from ..architecture import has_family_keys
from .base import Candidate, Checkpoint, CheckpointFormat, in_torch_file

PREPROCESSING = {"mean", "std", "crop_pct", "interpolation"}


def _detect(candidate: Candidate) -> bool:
    return candidate.holds_tensors and has_family_keys(candidate.state)


def _read(candidate: Candidate) -> Checkpoint:
    fields = candidate.kept_fields(FORMAT)
    if not PREPROCESSING & set(fields):
        _warn_default_preprocessing(candidate.weights)
    return candidate.checkpoint(FORMAT, candidate.state, fields)


def _warn_default_preprocessing(path: Path) -> None:
    """A bare state dict says nothing of how its images were prepared: say that defaults are
    used (a native model whose config.json was deleted and metadata stripped evaluated at
    0.958 instead of 0.994, silently)."""
    default = MixerConfig()
    warnings.warn(
        f"{path} holds weights only (no config.json, metadata or sidecar): its preprocessing "
        f"is unknown, so the defaults are used (mean {default.mean}, std {default.std}, "
        f"crop_pct {default.crop_pct}, {default.interpolation}); if it was trained otherwise, "
        "restore its config.json (eval: --mean, --std, --crop-pct, --interpolation)",
        stacklevel=5,
    )


def _write(path: Path, config: MixerConfig, state: Mapping[str, torch.Tensor]) -> None:
    if path.suffix not in TORCH_SUFFIXES:
        raise ConfigError(f"a bare state dict is saved as one of {TORCH_SUFFIXES}, got {path}")
    with atomic_path(path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)


FORMAT = CheckpointFormat(
    name="state_dict",
    detect=_detect,
    read=_read,
    write=_write,
    tensors_only=in_torch_file,
)
