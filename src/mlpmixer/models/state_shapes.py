"""A Mixer-family `MixerConfig` from the shapes of a state dict (this package's key names).

Pure: shapes in, config out, no file I/O (checkpoints/architecture.py picks the family and
calls the family's ``config_from_state``). The stem kernel gives C, in_chans and P; the
family's ``widths`` reader gives S, D_S and D_C from the first block; the head gives the
classes; counting ``blocks.<i>.`` gives N. The image size follows from S and P when the patch
grid is square; otherwise the caller passes ``img_size``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from .config import MixerConfig, to_pair

StateDict = Mapping[str, torch.Tensor]
_BLOCK = re.compile(r"blocks\.(\d+)\.")


def shape_of(state: StateDict, key: str, ndim: int) -> tuple[int, ...]:
    """The shape of ``state[key]``; a `CheckpointError` if missing or not ``ndim`` positive dims."""
    if key not in state:
        raise CheckpointError(f"checkpoint has no {key!r}: not a Mixer checkpoint, or truncated")
    shape = tuple(state[key].shape)
    if len(shape) != ndim or min(shape, default=0) <= 0:
        raise CheckpointError(f"{key} has shape {shape}; expected {ndim} positive dimensions")
    return shape


def count_blocks(state: StateDict) -> int:
    """N, from the ``blocks.<i>.`` keys (numbered 0..N-1, else a `CheckpointError`)."""
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


def stacked_config_from_state(
    state: StateDict,
    img_size: Any,
    fields: Mapping[str, Any],
    *,
    family: str,
    widths: Callable[[StateDict], tuple[int, int, int]],
) -> MixerConfig:
    """The `MixerConfig` of ``family`` whose parameters have exactly the shapes in ``state``.

    ``widths(state)`` is the family's (S, tokens_mlp_dim, channels_mlp_dim) reader; ``fields``
    (e.g. ``gelu``, ``mean``) fill in what shapes cannot tell.
    """
    hidden, in_chans, ph, pw = shape_of(state, "stem.proj.weight", 4)
    num_blocks = count_blocks(state)
    num_tokens, tokens_mlp_dim, channels_mlp_dim = widths(state)
    num_classes = shape_of(state, "head.weight", 2)[0] if "head.weight" in state else 0
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
