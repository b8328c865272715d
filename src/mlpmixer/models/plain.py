"""A plain, straightforward Mixer: the reference the fast `MlpMixer` is measured against.

Written the way most Mixer code is: a Conv2d stem, then for token mixing "transpose (B, S, C)
-> (B, C, S), nn.Linear over tokens, transpose back", ``nn.LayerNorm``, ``nn.GELU`` and
``nn.Linear`` everywhere, no fused or in-place operations. Parameter names and shapes are
those of `MlpMixer`, so ``PlainMixer(config).load_state_dict(model.state_dict())`` works in
both directions. Inference only cares about numbers; dropout and stochastic depth are left
out (this module exists for ``mlpmixer bench --compare`` and for equivalence tests).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MixerConfig


class PlainMlp(nn.Module):
    """Linear -> GELU -> Linear over the last axis."""

    def __init__(self, dim: int, hidden: int, gelu: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=gelu)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PlainBlock(nn.Module):
    """x = x + T(MLP_S(T(LN(x)))); x = x + MLP_C(LN(x)), with T the (S, C) transpose."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        c, eps, gelu = config.hidden_dim, config.norm_eps, config.gelu
        self.token_norm = nn.LayerNorm(c, eps=eps)
        self.token_mixing = PlainMlp(config.num_tokens, config.tokens_mlp_dim, gelu)
        self.channel_norm = nn.LayerNorm(c, eps=eps)
        self.channel_mixing = PlainMlp(c, config.channels_mlp_dim, gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, S, C)
        y = self.token_norm(x).transpose(1, 2)  # (B, C, S)
        x = x + self.token_mixing(y).transpose(1, 2)
        return x + self.channel_mixing(self.channel_norm(x))


class PlainMixer(nn.Module):
    """(B, in_chans, H, W) -> logits (B, num_classes); same state dict as `MlpMixer`."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        p = config.patch_size
        self.stem = nn.Module()
        self.stem.proj = nn.Conv2d(config.in_chans, config.hidden_dim, kernel_size=p, stride=p)
        self.blocks = nn.ModuleList(PlainBlock(config) for _ in range(config.num_blocks))
        self.norm = nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)
        self.head = (
            nn.Linear(config.hidden_dim, config.num_classes)
            if config.num_classes
            else nn.Identity()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem.proj(images).flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, S, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))

    @classmethod
    def from_model(cls, model: nn.Module) -> PlainMixer:
        """A plain copy of ``model`` (an `MlpMixer`): same config, weights, device and dtype."""
        plain = cls(model.config)
        plain.load_state_dict(model.state_dict())
        param = next(model.parameters())
        return plain.to(device=param.device, dtype=param.dtype).train(model.training)
