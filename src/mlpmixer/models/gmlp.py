"""gMLP (Liu et al., 2021, "Pay Attention to MLPs", arXiv 2105.08050): the spatial gating unit.

Shapes: x (B, S, C), D = ``channels_mlp_dim`` (timm: 6C). A block is

    Z = GELU(LN(x) · U + b_U)                    U: (C, D)        Z: (B, S, D)
    [Z1; Z2] = Z split along channels            each (B, S, D/2)
    s(Z) = Z1 ⊙ (W · LN'(Z2) + b)                W: (S, S) over the tokens, b: (S,)
    x = x + s(Z) · V + b_V                       V: (D/2, C)

W starts near zero and b at one, so every block starts as a plain channel MLP (the paper's
initialisation). LN' (inside the gate) uses epsilon 1e-5 as timm does; the other norms
``norm_eps``. ``tokens_mlp_dim`` is unused (the token layer is S × S).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import MlpFamilyModel
from .config import MixerConfig
from .init import linear
from .layers import PLAIN, LayerSet, drop_path
from .resize import TokenResize, token_linear_weights

GATE_NORM_EPS = 1e-5  # torch's LayerNorm default, which timm's spatial gating unit keeps


class SpatialGatingUnit(nn.Module):
    """(B, S, D) -> (B, S, D/2): the first half gated by a token projection of the second."""

    def __init__(self, hidden: int, num_tokens: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden // 2, eps=GATE_NORM_EPS)
        self.proj = linear(num_tokens, num_tokens)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z1, z2 = z.chunk(2, dim=-1)
        return z1 * self.proj(self.norm(z2).transpose(1, 2)).transpose(1, 2)  # W over tokens


class GMlpBlock(nn.Module):
    """x += V · SGU(GELU(U · LN(x))): one gated MLP with spatial gating, pre-norm, residual."""

    def __init__(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet = PLAIN):
        super().__init__()
        c, d = config.hidden_dim, config.channels_mlp_dim
        self.norm = nn.LayerNorm(c, eps=config.norm_eps)
        self.fc1 = linear(c, d)
        self.act = layers.act(approximate=config.gelu)
        self.spatial_gating = SpatialGatingUnit(d, config.num_tokens)
        self.fc2 = linear(d // 2, c)
        self.drop = nn.Dropout(config.drop_rate)
        self.drop_path_rate = drop_path_rate
        self.drop_path_scale = config.drop_path_scale

    def resized_token_weights(self, resize: TokenResize) -> dict[str, torch.Tensor]:
        """The spatial gate's S × S Linear at another patch grid (models/resize.py)."""
        return token_linear_weights(self.spatial_gating.proj, resize, "spatial_gating.proj.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.spatial_gating(self.drop(self.act(self.fc1(self.norm(x)))))
        branch = self.drop(self.fc2(z))
        return x + drop_path(branch, self.drop_path_rate, self.training, self.drop_path_scale)


class GMlp(MlpFamilyModel):
    """gMLP: ``GMlp(config)`` with ``config.family == "gmlp"``."""

    family = "gmlp"
    token_linear = "spatial_gating.proj"

    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        return GMlpBlock(config, drop_path_rate, layers)

    def gates(self) -> dict[nn.Module, int]:
        # The paper's init: W ~ 0 and b = 1, so the gate passes Z1 through at first.
        return {block.spatial_gating.proj: 0 for block in self.blocks}
