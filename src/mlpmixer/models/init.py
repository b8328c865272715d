"""Weight initialisation as in the official JAX code (google-research/vision_transformer).

Dense and stem kernels: flax's default ``lecun_normal`` — a normal with variance 1/fan_in,
truncated at two standard deviations (and widened so the truncated variance is still
1/fan_in). Biases zero, LayerNorm scale one and bias zero, and the classifier head all zeros
(set by the model itself). big_vision's Mixer uses xavier-uniform kernels instead; both give
the same results at the paper's scale, and this one matches the released checkpoints' code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Standard deviation of a unit normal truncated to [-2, 2]; flax divides by it.
_TRUNCATED_STD = 0.87962566103423978
# From this many elements on, the truncated normal redraws only the values outside [-2, 2]
# (4.6% of them, a few rounds); torch's trunc_normal_ redraws the whole tensor each round,
# which made a fresh Mixer-B/16 take 10-20 s on a CPU. Both give exactly the truncated normal;
# smaller tensors keep torch's draws, so the small recipes' seeded results stay as measured.
_FAST_FROM = 2**20


@torch.no_grad()
def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Fill ``weight`` (out, in, ...) with flax's lecun_normal: trunc-normal, var = 1/fan_in."""
    fan_in = weight[0].numel()
    std = math.sqrt(1.0 / fan_in) / _TRUNCATED_STD
    if weight.numel() < _FAST_FROM:
        return nn.init.trunc_normal_(weight, std=std, a=-2.0 * std, b=2.0 * std)
    return _truncated_normal_(weight, std)


def _truncated_normal_(weight: torch.Tensor, std: float) -> torch.Tensor:
    """A normal(0, std) truncated to [-2 std, 2 std] by redrawing the values outside."""
    if weight.is_meta:  # no storage (models built for their shapes): nothing to draw
        return weight
    weight.normal_()
    flat = weight.view(-1) if weight.is_contiguous() else weight.reshape(-1)
    outside = (flat.abs() > 2.0).nonzero().squeeze(1)
    while outside.numel():
        flat[outside] = torch.randn(outside.numel(), dtype=flat.dtype, device=flat.device)
        outside = outside[flat[outside].abs() > 2.0]
    if flat.data_ptr() != weight.data_ptr():
        weight.copy_(flat.view_as(weight))
    return weight.mul_(std)


@torch.no_grad()
def open_gate_(linear: nn.Linear, rows: slice) -> None:
    """Make ``rows`` of a gating Linear output ~1 whatever its input: weights ~0, bias 1.

    Gated blocks (gMLP's spatial gate, SwiGLU) then start as the plain MLP they gate.
    """
    nn.init.normal_(linear.weight[rows], std=1e-6)
    nn.init.ones_(linear.bias[rows])


@torch.no_grad()
def init_weights(model: nn.Module) -> None:
    """Initialise every Linear and Conv2d of ``model`` except its ``head`` (zeros by design)."""
    for name, module in model.named_modules():
        if name == "head":
            continue
        if isinstance(module, nn.Linear | nn.Conv2d):
            lecun_normal_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
