"""Small helpers shared by the model and checkpoint tests."""

from __future__ import annotations

import math

import torch

from mlpmixer import MlpMixer


def randomised(model: MlpMixer, seed: int = 0) -> MlpMixer:
    """Random weights everywhere, head and norms included (the defaults are too symmetric)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            scale = 0.5 if p.ndim == 1 else 1 / math.sqrt(p.shape[-1])
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()
