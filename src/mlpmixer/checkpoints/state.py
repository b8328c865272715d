"""Checks that a state dict fits a config, and config overrides at load time.

Shared by every checkpoint format: the format readers translate keys into this package's
names, then these functions decide whether the weights fit, with messages that name the
offending keys and shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.config import MixerConfig

_SHOWN = 8  # keys listed in an error message before "... and N more"


def _listing(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


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


def check_state_fits(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any]) -> None:
    """Raise `CheckpointError` naming missing/unexpected keys and mismatched shapes."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched)}")
    if problems:
        raise CheckpointError("checkpoint does not fit the model; " + "; ".join(problems))
    bad_dtype = [k for k, v in state.items() if not torch.is_floating_point(v)]
    if bad_dtype:
        raise CheckpointError(f"checkpoint tensors are not floating point: {_listing(bad_dtype)}")


def apply_overrides(
    config: MixerConfig, overrides: Mapping[str, Any], reset_head: bool = False
) -> MixerConfig:
    """The stored ``config`` with the caller's ``overrides`` applied, validated.

    A different ``num_classes`` needs ``reset_head=True`` (fine-tuning: the stored class
    names are dropped with the head); a different token count needs an explicit
    `MlpMixer.resize` after loading, since it changes the token-mixing weights.
    """
    overrides = dict(overrides)
    new_classes = overrides.get("num_classes", config.num_classes)
    if new_classes != config.num_classes and not reset_head:
        raise CheckpointError(
            f"the checkpoint has {config.num_classes} classes but num_classes={new_classes} "
            "was asked; pass reset_head=True (CLI: --reset-head) to replace the head with a "
            "fresh one"
        )
    if reset_head:
        overrides.setdefault("class_names", None)
    new = config.replace(**overrides) if overrides else config
    if new.num_tokens != config.num_tokens:
        raise CheckpointError(
            f"img_size={new.img_size} gives {new.num_tokens} tokens but the checkpoint's token "
            f"mixing expects {config.num_tokens} (img_size {config.img_size}); load it as it is, "
            "then call model.resize(img_size)"
        )
    return new
