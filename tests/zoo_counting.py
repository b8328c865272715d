"""Costs of a built model, counted by forward hooks: what the zoo's analytic counts and the
papers' counters are held to. Runs on any device; on the meta device it is shapes only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class HookedCounts:
    macs: int = 0  # multiply-adds of every conv and Linear
    thop: int = 0  # thop's count: macs, +1 per output of a biased layer, +2 per BatchNorm element


def hooked_counts(model: nn.Module, size: tuple[int, int], in_chans: int = 3) -> HookedCounts:
    """The counts of one forward pass of one (in_chans, *size) image, in eval mode."""
    counts = HookedCounts()

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            per_out = module.in_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.Linear):
            per_out = module.in_features
        else:
            if isinstance(module, nn.BatchNorm2d):
                counts.thop += 2 * output.numel()
            return
        counts.macs += output.numel() * per_out
        counts.thop += output.numel() * (per_out + (module.bias is not None))

    handles = [m.register_forward_hook(count) for m in model.modules()]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_chans, *size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return counts
