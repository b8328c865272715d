"""Checks on loaded tensors shared by every reader of weights (checkpoints/, train/)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .errors import CheckpointError


def check_tensor_views(state: Mapping[str, torch.Tensor], source: Any) -> None:
    """Refuse tensors that view more elements than their storage holds (stride 0, overlaps).

    A pickle may describe a (10**6, 10**6) tensor with stride (0, 0) over one float: it loads
    in microseconds, and the first ``.contiguous()`` asks for terabytes.
    """
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        viewed = tensor.numel() * tensor.element_size()
        stored = tensor.untyped_storage().nbytes()
        if viewed > stored or (tensor.numel() > 1 and 0 in tensor.stride()):
            raise CheckpointError(
                f"{source}: tensor {name} of shape {tuple(tensor.shape)} and strides "
                f"{tensor.stride()} views {viewed:,} bytes of a {stored:,}-byte storage "
                "(stride 0 or overlapping); refusing it — a real checkpoint stores every element"
            )
