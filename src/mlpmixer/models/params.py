"""Which parameters get weight decay: the one rule every optimizer here is built with."""

from __future__ import annotations

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
