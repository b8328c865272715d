"""ResMLP (Touvron et al., 2021, arXiv 2105.03404): Affine instead of LayerNorm, one linear
token-mixing layer, LayerScale.

Shapes: x (B, S, C); A = Aff(x) = α ⊙ x + β (per channel, no statistics). A block is

    x = x + λ1 ⊙ (A1(x)ᵀ · Wᵀ + b)ᵀ        W: (S, S), one linear layer over the tokens
    x = x + λ2 ⊙ MLP(A2(x))               MLP: Linear(C, D_C) -> GELU -> Linear(D_C, C)

with LayerScale vectors λ1, λ2 (C,) initialised to ``layer_scale_init`` (timm: 1e-4 for 12
blocks, 1e-5 for 24, 1e-6 for 36 and the big model). The final norm is an Affine too.
``tokens_mlp_dim`` is unused (the token layer is S × S).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import MlpFamilyModel
from .config import MixerConfig
from .init import linear
from .layers import PLAIN, Affine, LayerSet, drop_path
from .resize import TokenResize, token_linear_weights


class ResMlpBlock(nn.Module):
    """Linear token mixing and an MLP over channels, each pre-Affine and LayerScaled."""

    def __init__(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet = PLAIN):
        super().__init__()
        c, s = config.hidden_dim, config.num_tokens
        self.token_norm = Affine(c)
        self.token_mixing = linear(s, s)
        self.token_scale = nn.Parameter(torch.full((c,), config.layer_scale_init))
        self.channel_norm = Affine(c)
        self.channel_mixing = layers.mlp(
            c, config.channels_mlp_dim, config.gelu, config.drop_rate, act_layer=layers.act
        )
        self.channel_scale = nn.Parameter(torch.full((c,), config.layer_scale_init))
        self.drop_path_rate = drop_path_rate
        self.drop_path_scale = config.drop_path_scale

    def resized_token_weights(self, resize: TokenResize) -> dict[str, torch.Tensor]:
        """The S × S token Linear at another patch grid (models/resize.py)."""
        return token_linear_weights(self.token_mixing, resize, "token_mixing.")

    def _residual(self, scale: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return drop_path(scale * branch, self.drop_path_rate, self.training, self.drop_path_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.token_mixing(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        x = x + self._residual(self.token_scale, tokens)
        return x + self._residual(self.channel_scale, self.channel_mixing(self.channel_norm(x)))


class ResMlp(MlpFamilyModel):
    """ResMLP: ``ResMlp(config)`` with ``config.family == "resmlp"``."""

    family = "resmlp"
    token_linear = "token_mixing"

    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        return ResMlpBlock(config, drop_path_rate, layers)

    def make_norm(self, config: MixerConfig) -> nn.Module:
        return Affine(config.hidden_dim)
