"""timm's state dicts of every family (`checkpoints.timm_format`): ``.pth``/``.pt``/``.bin``,
``.safetensors`` or a hub folder (config.json + weights). timm's Mixers use the exact GELU.
A torch pickle holds tensors only (a sidecar keeps the rest); a safetensors file keeps the
settings in its metadata, a hub folder in its config.json and metadata.
"""

from __future__ import annotations

from ...layout import TORCH_SUFFIXES
from ..timm_format import timm_family, timm_to_state, write_timm
from .base import Candidate, Checkpoint, CheckpointFormat, in_torch_file


def _detect(candidate: Candidate) -> bool:
    return candidate.holds_tensors and timm_family(candidate.state) is not None


def _read(candidate: Candidate) -> Checkpoint:
    return candidate.read_as(FORMAT, timm_to_state(candidate.state))


FORMAT = CheckpointFormat(
    name="timm",
    detect=_detect,
    read=_read,
    write=write_timm,
    suffixes=TORCH_SUFFIXES,
    defaults={"gelu": "none"},  # timm's Mixer uses nn.GELU(), the exact erf
    tensors_only=in_torch_file,
)
