"""Layers shared by the family: patch stem, stochastic depth, ResMLP's Affine.

Shapes: B images, S tokens, C channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def drop_path(x: torch.Tensor, p: float, training: bool, scale: bool) -> torch.Tensor:
    """Stochastic depth: zero the residual branch ``x`` (B, ...) of whole examples with prob ``p``.

    ``scale=True`` divides kept branches by 1-p (timm, expectation-preserving);
    ``scale=False`` keeps them as they are (big_vision's ``stoch_depth``).
    """
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    if scale:
        keep.div_(1.0 - p)
    return x * keep


class PatchEmbed(nn.Module):
    """Non-overlapping P×P patches, each projected to C channels: (B, in, H, W) -> (B, S, C).

    The weight is stored as a Conv2d kernel (C, in, Ph, Pw); the forward pass is a
    patchify reshape plus one matmul, which computes exactly the strided convolution.
    """

    def __init__(self, patch_size: tuple[int, int], in_chans: int, hidden_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, hidden_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, c, h, w = images.shape
        ph, pw = self.patch_size
        patches = images.reshape(b, c, h // ph, ph, w // pw, pw)
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // ph) * (w // pw), c * ph * pw)
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)


class Affine(nn.Module):
    """ResMLP's normalisation-free "norm": Aff(x) = α ⊙ x + β over the last axis (C,)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta, self.alpha, x)


def over_tokens(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``layer`` (acting on the last axis) along the token axis of x (B, S, C)."""
    return layer(x.transpose(1, 2)).transpose(1, 2)
