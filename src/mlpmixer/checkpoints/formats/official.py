"""Google's official Mixer checkpoints (`checkpoints.official`): a flat ``.npz`` of flax
parameter paths, Mixers only. Tensors only: flax's tanh GELU is its default, every other
setting shapes cannot tell is kept in a sidecar beside the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import ConfigError
from ...layout import NPZ_SUFFIX
from ...models.config import MixerConfig
from ...models.spec import family_spec
from ..architecture import infer_config
from ..official import official_to_state, read_npz, write_npz
from ..sidecar import read_sidecar
from .base import Candidate, Checkpoint, CheckpointFormat

DEFAULTS = {"gelu": "tanh"}


def _read(candidate: Candidate) -> Checkpoint:
    path = candidate.path
    state = official_to_state(read_npz(path), path)
    fields = {**DEFAULTS, **read_sidecar(path)}
    config = infer_config(state, candidate.img_size, **fields)
    return Checkpoint(FORMAT.name, config, state, str(path))


def _write(path: Path, config: MixerConfig, state: Mapping[str, torch.Tensor]) -> None:
    if not family_spec(config.family).official_npz:
        raise ConfigError(
            f"the official .npz layout holds Mixers only, not {config.family!r}; "
            "save as timm (.pth/.safetensors) or native instead"
        )
    if path.suffix != NPZ_SUFFIX:
        raise ConfigError(f"the official format is an .npz file, got {path}")
    write_npz(path, config, dict(state))


FORMAT = CheckpointFormat(
    name="official",
    detect=lambda candidate: candidate.path.suffix == NPZ_SUFFIX,
    read=_read,
    write=_write,
    suffixes=(NPZ_SUFFIX,),
    defaults=DEFAULTS,
    tensors_only=lambda path: True,
)
