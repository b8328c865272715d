"""Torch pickles of weights (``.pth`` / ``.pt`` / ``.bin``), read without running code.

Every format that stores a state dict with ``torch.save`` (timm, deit's ResMLP, lucidrains,
bare state dicts, a run's ``last.pt``) reads it here: ``torch.load(weights_only=True)``
unpickles tensors and plain values only, and every tensor is checked to view no more bytes
than its storage holds before anything touches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .state_fit import check_plain_tensor

WRAPPERS = ("state_dict", "model", "module")  # training scripts nest the weights in these


def read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a torch pickle, loaded with ``weights_only=True`` (no code runs)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for hostile or corrupt pickles
        raise CheckpointError(
            f"{path}: cannot be loaded as plain weights ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Files that need to run code "
            "to load are refused"
        ) from err
    state = unwrap_state_dict(obj, path)
    check_tensor_views(state, path)
    return state


def unwrap_state_dict(obj: Any, source: Any) -> dict[str, torch.Tensor]:
    """The flat name -> tensor dict inside what ``torch.load`` returned (wrappers, DDP prefix)."""
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPERS if k in obj), None)
        if inner is None:
            raise CheckpointError(f"{source}: no tensors found (top-level keys: {sorted(obj)[:8]})")
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict, got {type(obj).__name__}")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):  # saved from DDP
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def check_tensor_views(state: Mapping[str, torch.Tensor], source: Any) -> None:
    """Refuse tensors that view more elements than their storage holds (stride 0, overlaps).

    A pickle may describe a (10**6, 10**6) tensor with stride (0, 0) over one float: it loads
    in microseconds, and the first ``.contiguous()`` asks for terabytes.
    """
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        check_plain_tensor(name, tensor, source)  # sparse/meta: no storage to measure
        viewed = tensor.numel() * tensor.element_size()
        stored = tensor.untyped_storage().nbytes()
        if viewed > stored or (tensor.numel() > 1 and 0 in tensor.stride()):
            raise CheckpointError(
                f"{source}: tensor {name} of shape {tuple(tensor.shape)} and strides "
                f"{tensor.stride()} views {viewed:,} bytes of a {stored:,}-byte storage "
                "(stride 0 or overlapping); refusing it — a real checkpoint stores every element"
            )
