"""Rebuild a `MixerConfig` from the shapes of a state dict (this package's key names).

Every foreign format is first translated to the package's key names; the architecture then
follows from the keys and shapes alone: the key names give the family (Mixer, gMixer,
ResMLP, gMLP); the stem kernel gives C, in_chans and P; the token-mixing weight gives S
(and D_S); the channel-mixing weight gives D_C; the head gives the classes.
The image size follows from S and P when the patch grid is square; otherwise the caller
passes ``img_size``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..models.config import MixerConfig, to_pair

_BLOCK = re.compile(r"blocks\.(\d+)\.")


def _shape(state: Mapping[str, torch.Tensor], key: str, ndim: int) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"checkpoint has no {key!r}: not a Mixer checkpoint, or truncated")
    shape = tuple(state[key].shape)
    if len(shape) != ndim or min(shape, default=0) <= 0:
        raise CheckpointError(f"{key} has shape {shape}; expected {ndim} positive dimensions")
    return shape


def count_blocks(state: Mapping[str, torch.Tensor]) -> int:
    indices = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    if not indices:
        raise CheckpointError("checkpoint has no Mixer blocks (no 'blocks.<i>.' keys)")
    if indices != set(range(len(indices))):
        missing = sorted(set(range(max(indices) + 1)) - indices)
        raise CheckpointError(f"checkpoint blocks are not numbered 0..N-1: missing {missing}")
    return len(indices)


def infer_img_size(
    num_tokens: int, patch: tuple[int, int], img_size: Any = None
) -> tuple[int, int]:
    """The image size for S tokens of ``patch``; ``img_size`` (given) is checked instead."""
    if img_size is not None:
        try:
            size = to_pair(img_size, "img_size")
        except ConfigError as err:
            raise CheckpointError(str(err)) from err
        grid = (size[0] // patch[0], size[1] // patch[1])
        if math.prod(grid) != num_tokens or size[0] % patch[0] or size[1] % patch[1]:
            raise CheckpointError(
                f"img_size {size} with patch {patch} gives {math.prod(grid)} tokens, but the "
                f"checkpoint's token mixing has {num_tokens}; load it at its own size, then call "
                "model.resize(img_size)"
            )
        return size
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise CheckpointError(
            f"the checkpoint has {num_tokens} tokens, not a square patch grid; pass img_size=(h, w)"
        )
    return side * patch[0], side * patch[1]


# A key only the family's state dicts (this package's names) have; Mixer/gMixer by shape.
OWN_MARKERS = {
    "blocks.0.token_mixing.fc1.weight": "mixer",
    "blocks.0.token_scale": "resmlp",
    "blocks.0.spatial_gating.proj.weight": "gmlp",
}


def infer_family(state: Mapping[str, torch.Tensor]) -> str:
    """The family whose key names ``state`` has; gMixer's token fc2 reads half of fc1's width."""
    family = next((f for key, f in OWN_MARKERS.items() if key in state), None)
    if family is None:
        raise CheckpointError(
            "checkpoint has none of the family's token-mixing keys "
            f"({', '.join(OWN_MARKERS)}): not a Mixer-family checkpoint, or truncated"
        )
    if family == "mixer":
        width = _shape(state, "blocks.0.token_mixing.fc1.weight", 2)[0]
        if 2 * _shape(state, "blocks.0.token_mixing.fc2.weight", 2)[1] == width:
            family = "gmixer"
    return family


def _widths(state: Mapping[str, torch.Tensor], family: str) -> tuple[int, int, int]:
    """(S, tokens_mlp_dim, channels_mlp_dim) from the first block's shapes."""
    if family in ("mixer", "gmixer"):
        d_s, s = _shape(state, "blocks.0.token_mixing.fc1.weight", 2)
        d_c = _shape(state, "blocks.0.channel_mixing.fc1.weight", 2)[0]
        return s, d_s, d_c
    if family == "resmlp":
        s = _shape(state, "blocks.0.token_mixing.weight", 2)[0]
        return s, s, _shape(state, "blocks.0.channel_mixing.fc1.weight", 2)[0]
    s = _shape(state, "blocks.0.spatial_gating.proj.weight", 2)[0]
    return s, s, _shape(state, "blocks.0.fc1.weight", 2)[0]


def infer_config(
    state: Mapping[str, torch.Tensor], img_size: Any = None, **fields: Any
) -> MixerConfig:
    """The `MixerConfig` whose parameters have exactly the shapes in ``state``.

    The family follows from the key names (`infer_family`). ``fields`` (e.g. ``gelu``,
    ``mean``) fill in what shapes cannot tell.
    """
    family = infer_family(state)
    hidden, in_chans, ph, pw = _shape(state, "stem.proj.weight", 4)
    num_blocks = count_blocks(state)
    num_tokens, tokens_mlp_dim, channels_mlp_dim = _widths(state, family)
    num_classes = _shape(state, "head.weight", 2)[0] if "head.weight" in state else 0
    size = infer_img_size(num_tokens, (ph, pw), img_size)
    try:
        return MixerConfig(
            family=family,
            img_size=size,
            patch_size=(ph, pw),
            in_chans=in_chans,
            num_classes=num_classes,
            hidden_dim=hidden,
            num_blocks=num_blocks,
            tokens_mlp_dim=tokens_mlp_dim,
            channels_mlp_dim=channels_mlp_dim,
            **fields,
        )
    except ConfigError as err:
        raise CheckpointError(f"checkpoint shapes give an invalid config: {err}") from err
