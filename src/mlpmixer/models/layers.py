"""Layers shared by the family: patch stem, MLPs, stochastic depth, ResMLP's Affine.

Shapes: B images, S tokens, C channels. These are the plain layers, written as the papers
write them; `models.fast` has drop-in replacements (same parameters and state dicts) that a
model picks once, at construction, through a `LayerSet`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .init import conv, linear


def drop_path(x: torch.Tensor, p: float, training: bool, scale: bool) -> torch.Tensor:
    """Stochastic depth: zero the residual branch ``x`` (B, ...) of whole examples with prob ``p``.

    ``scale=True`` divides kept branches by 1-p (timm, expectation-preserving);
    ``scale=False`` keeps them as they are (big_vision's ``stoch_depth``).
    """
    if p == 0.0 or not training:
        return x
    keep = x.new_empty([x.shape[0]] + [1] * (x.ndim - 1)).bernoulli_(1.0 - p)
    if scale:
        keep.div_(1.0 - p)
    return x * keep


class PatchEmbed(nn.Module):
    """Non-overlapping P×P patches, each projected to C channels: (B, in, H, W) -> (B, S, C).

    A strided convolution, as in the paper's Listing 1 (``nn.Conv(..., strides=patch)``).
    """

    def __init__(self, patch_size: tuple[int, int], in_chans: int, hidden_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = conv(in_chans, hidden_dim, patch_size, patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, S, C)


class Mlp(nn.Module):
    """Dense -> GELU -> Dense over the last axis (dim -> hidden -> dim), dropout after each.

    The paper's ``MlpBlock``: Mixer's channel MLP, and with `TokenMlp` its token MLP.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        gelu: str = "none",
        drop: float = 0.0,
        act_layer: Callable[..., nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.fc1 = linear(dim, hidden)
        self.act = act_layer(approximate=gelu)
        self.fc2 = linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim): fc2(GELU(fc1(x))) with dropout."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TokenMlp(Mlp):
    """`Mlp` over the token axis: (B, S, C) -> transpose -> MLP over S -> transpose back.

    ``fc1.weight`` is (D_S, S), as in a Linear over tokens.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)


@dataclass(frozen=True)
class LayerSet:
    """The layer classes a model is built from: `PLAIN`, or `models.fast.FAST` (drop-ins)."""

    patch_embed: type[PatchEmbed] = PatchEmbed
    mlp: type[Mlp] = Mlp  # over the last axis (channels)
    token_mlp: type[Mlp] = TokenMlp  # over the tokens of (B, S, C)
    act: Callable[..., nn.Module] = nn.GELU  # takes approximate=


PLAIN = LayerSet()


class Affine(nn.Module):
    """ResMLP's normalisation-free "norm": Aff(x) = α ⊙ x + β over the last axis (C,)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta, self.alpha, x)
