"""gMixer: the Mixer with SwiGLU MLPs (Ross Wightman's experiment in timm, ``gmixer_*``).

The block is the Mixer's (`MixerBlock`): x += TokenMLP(LN(x)); x += ChannelMLP(LN(x)), with
each MLP a SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"):

    SwiGLU(x) = W2 · (a ⊙ SiLU(g)) + b2,   [a; g] = W1 · x + b1   W1: (D, n), W2: (n, D/2)

``tokens_mlp_dim`` and ``channels_mlp_dim`` are D, the first layer's width (timm's
``mlp_ratio`` (1, 4) gives D_S = C and D_C = 4C); the gated width is D/2. The token MLP acts
along the token axis of (B, S, C), the channel MLP along the channels.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MixerConfig
from .init import linear
from .layers import LayerSet
from .mixer import MixerBlock, MlpMixer
from .resize import TokenResize, token_mlp_weights


class SwiGluMlp(nn.Module):
    """(..., n) -> (..., n): value half times SiLU of the gate half of fc1, then fc2."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = linear(dim, hidden)  # rows [0, D/2): values, [D/2, D): gates
        self.act = nn.SiLU()
        self.fc2 = linear(hidden // 2, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.swiglu(x)

    def swiglu(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(x).chunk(2, dim=-1)
        return self.drop(self.fc2(self.drop(value * self.act(gate))))


class TokenSwiGluMlp(SwiGluMlp):
    """`SwiGluMlp` over the token axis: (B, S, C) -> (B, S, C), fc1 (D_S, S)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.swiglu(x.transpose(1, 2)).transpose(1, 2)


class GMixerBlock(MixerBlock):
    """`MixerBlock` whose token and channel MLPs are SwiGLUs."""

    def token_mlp(self, config: MixerConfig, layers: LayerSet) -> nn.Module:
        return TokenSwiGluMlp(config.num_tokens, config.tokens_mlp_dim, config.drop_rate)

    def channel_mlp(self, config: MixerConfig, layers: LayerSet) -> nn.Module:
        return SwiGluMlp(config.hidden_dim, config.channels_mlp_dim, config.drop_rate)

    def resized_token_weights(self, resize: TokenResize) -> dict[str, torch.Tensor]:
        """As the Mixer's, values and gates of fc1 resized apart (models/resize.py)."""
        return token_mlp_weights(self.token_mixing, resize, "token_mixing.", halves=2)


class GMixer(MlpMixer):
    """gMixer: ``GMixer(config)`` with ``config.family == "gmixer"``."""

    family = "gmixer"

    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        return GMixerBlock(config, drop_path_rate, layers)

    def gates(self) -> dict[nn.Module, int]:
        # Gates start nearly constant (SiLU(1) ≈ 0.73), as in timm: each SwiGLU starts as a
        # plain linear map of its value half (fc1's rows [D/2, D)).
        swiglus = [m for m in self.modules() if isinstance(m, SwiGluMlp)]
        return {mlp.fc1: mlp.fc1.out_features // 2 for mlp in swiglus}
