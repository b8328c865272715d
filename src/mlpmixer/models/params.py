"""Which parameters get weight decay: the one rule every optimizer here is built with."""

from __future__ import annotations

import re
from typing import Any

from torch import nn


def no_weight_decay_names(module: nn.Module) -> set[str]:
    """Names of the parameters recipes exclude from weight decay: norms and biases (ndim <= 1)."""
    return {name for name, p in module.named_parameters() if p.ndim <= 1}


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimizer groups of ``module``'s trainable parameters: matrices (and the stem's
    kernel) with ``weight_decay``, norms and biases with none."""
    skip = no_weight_decay_names(module)
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if n not in skip], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n in skip], "weight_decay": 0.0},
    ]


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Parameter name -> layer id from ``model.group_matcher()`` (timm's convention): the stem
    0, block i i+1, the final norm and the head (matched by nothing) the last id, N+1."""
    matcher = model.group_matcher()  # type: ignore[operator]
    last = len(model.blocks) + 1  # type: ignore[arg-type]
    ids = {}
    for name, _ in model.named_parameters():
        ids[name] = last
        if re.match(matcher["stem"], name):
            ids[name] = 0
            continue
        for pattern, fixed in matcher["blocks"]:
            found = re.match(pattern, name)
            if found:
                ids[name] = int(found.group(1)) + 1 if fixed is None else last
                break
    return ids


def layer_decay_groups(
    module: nn.Module, weight_decay: float, lr: float, decay: float
) -> list[dict[str, Any]]:
    """`weight_decay_groups` split per layer, each with ``lr · decay^(last - layer_id)``
    (timm's layer-wise LR decay): the head and final norm get ``lr``, the stem the smallest.
    Each group keeps its factor as ``lr_scale``."""
    ids = layer_ids(module)
    last = max(ids.values())
    skip = no_weight_decay_names(module)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        key = (ids[name], name in skip)
        if key not in groups:
            scale = decay ** (last - ids[name])
            groups[key] = {
                "params": [], "weight_decay": 0.0 if key[1] else weight_decay,
                "lr": lr * scale, "lr_scale": scale,
            }  # fmt: skip
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]
