"""MLP-Mixer (Tolstikhin et al., 2021, arXiv 2105.01601), as the paper's Listing 1.

Shapes: B images, S = (H/P)·(W/P) tokens (patches), C = hidden_dim channels,
D_S = tokens_mlp_dim, D_C = channels_mlp_dim:

    stem:            (B, in, H, W) -> P×P patches, Dense -> (B, S, C)
    token mixing:    x = x + (MLP_S(LN(x)ᵀ))ᵀ        MLP_S: S -> D_S -> S, shared by channels
    channel mixing:  x = x + MLP_C(LN(x))            MLP_C: C -> D_C -> C, shared by tokens
    head:            LN -> mean over S -> Dense(C, num_classes)

with MLP(x) = W2 · GELU(W1 · x + b1) + b2 (`layers.Mlp`). The layers come from the model's
`LayerSet`: plain ``nn.Linear``/``nn.GELU``/``nn.LayerNorm``-style layers, or `models.fast`'s
CPU drop-ins with the same parameters (picked once, at construction).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import MlpFamilyModel
from .config import MixerConfig
from .layers import PLAIN, LayerSet, Mlp, PatchEmbed, drop_path
from .resize import TokenResize, token_mlp_weights

__all__ = ["MixerBlock", "Mlp", "MlpMixer", "PatchEmbed", "drop_path"]


class MixerBlock(nn.Module):
    """x += TokenMixing(LN(x)); x += ChannelMixing(LN(x)), for x of shape (B, S, C).

    The two MLPs come from `token_mlp` and `channel_mlp`, which gMixer overrides.
    """

    def __init__(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet = PLAIN):
        super().__init__()
        self.token_norm = nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)
        self.token_mixing = self.token_mlp(config, layers)
        self.channel_norm = nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)
        self.channel_mixing = self.channel_mlp(config, layers)
        self.drop_path_rate = drop_path_rate
        self.drop_path_scale = config.drop_path_scale

    def token_mlp(self, config: MixerConfig, layers: LayerSet) -> nn.Module:
        """(B, S, C) -> (B, S, C), mixing along S."""
        s, d_s, gelu = config.num_tokens, config.tokens_mlp_dim, config.gelu
        return layers.token_mlp(s, d_s, gelu, config.drop_rate, act_layer=layers.act)

    def channel_mlp(self, config: MixerConfig, layers: LayerSet) -> nn.Module:
        """(B, S, C) -> (B, S, C), mixing along C."""
        c, d_c, gelu = config.hidden_dim, config.channels_mlp_dim, config.gelu
        return layers.mlp(c, d_c, gelu, config.drop_rate, act_layer=layers.act)

    def resized_token_weights(self, resize: TokenResize) -> dict[str, torch.Tensor]:
        """This block's token-mixing weights at another patch grid (models/resize.py)."""
        return token_mlp_weights(self.token_mixing, resize, "token_mixing.")

    def _drop_path(self, branch: torch.Tensor) -> torch.Tensor:
        return drop_path(branch, self.drop_path_rate, self.training, self.drop_path_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The residual is added in place into the branch's output, a fresh tensor that backward
        # does not need: one (B, S, C) allocation less per branch.
        x = self._drop_path(self.token_mixing(self.token_norm(x))).add_(x)
        return self._drop_path(self.channel_mixing(self.channel_norm(x))).add_(x)


class MlpMixer(MlpFamilyModel):
    """MLP-Mixer. ``MlpMixer(config)`` or ``MlpMixer(img_size=32, patch_size=4, ...)``.

    ``forward(images)`` maps (B, in_chans, H, W) to logits (B, num_classes), or to pooled
    features (B, C) when ``num_classes == 0``. The shared API is in `MlpFamilyModel`;
    ``grad_checkpointing`` and ``fast`` are construction keywords there, not part of the
    (saved) config.
    """

    family = "mixer"
    token_weight = "token_mixing.fc1.weight"  # gMixer's too: its rows are values, then gates

    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        return MixerBlock(config, drop_path_rate, layers)
