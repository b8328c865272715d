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


FINAL = (99999,)  # timm's group key of the final norm; here it shares the head's layer id


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Parameter name -> layer id from ``model.group_matcher()`` (timm's convention).

    A parameter matched by a ``blocks`` entry ``(pattern, suffix)`` has the key ``(numbers
    the pattern captures) + suffix``, as in timm; the ids are the keys' ranks in sorted order,
    after the stem (0). The final norm (key ``FINAL``) and the head (matched by nothing) share
    the last id. For a flat model (``^blocks\\.(\\d+)``) block i gets i+1 and the last id is
    N+1; for a staged one the keys (stage slot, block[, suffix]) rank every block of every
    stage in the order the forward pass runs them (their count, not ``len(model.blocks)``,
    sets the last id).
    """
    matcher = model.group_matcher()  # type: ignore[operator]
    keys = {name: _group_key(matcher, name) for name, _ in model.named_parameters()}
    ranked = sorted({k for k in keys.values() if k not in ((), FINAL)})
    rank = {key: i + 1 for i, key in enumerate(ranked)}
    last = len(ranked) + 1
    return {name: 0 if key == () else rank.get(key, last) for name, key in keys.items()}


def _group_key(matcher: dict[str, Any], name: str) -> tuple[int, ...]:
    """() for the stem, the timm group key of a ``blocks`` entry, else ``FINAL``."""
    if re.match(matcher["stem"], name):
        return ()
    for pattern, suffix in matcher["blocks"]:
        found = re.match(pattern, name)
        if found:
            return tuple(int(g) for g in found.groups()) + tuple(suffix or ())
    return FINAL


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
