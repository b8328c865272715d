"""Tensors a checkpoint file may hold: dense, with data.

Whether a state dict fits a config, and config overrides at load time, are pure and live
with the models (models/state_fit.py), so that models/ works without checkpoints/.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CheckpointError


def check_plain_tensor(name: str, tensor: torch.Tensor, source: Any) -> None:
    """Refuse a tensor that cannot be weights: sparse or other non-dense layouts (their
    storage cannot even be inspected) and meta tensors (a shape without data)."""
    if tensor.layout != torch.strided:
        raise CheckpointError(
            f"{source}: tensor {name} is {str(tensor.layout).removeprefix('torch.')}, not dense; "
            "a checkpoint holds dense weights (re-save it with .to_dense())"
        )
    if tensor.is_meta:
        raise CheckpointError(
            f"{source}: tensor {name} is on the meta device (a shape without data); "
            "the file holds no weights for it"
        )
