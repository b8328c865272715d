"""MLP-Mixer (Tolstikhin et al., 2021, arXiv 2105.01601) as one PyTorch module.

Shapes: B images, S = (H/P)·(W/P) tokens (patches), C = hidden_dim channels,
D_S = tokens_mlp_dim, D_C = channels_mlp_dim. Activations stay (B, S, C) from the stem
to the head; no transpose is ever materialised:

    stem:            (B, in, H, W) -> patchify -> (B, S, in·P·P) @ W_stem -> (B, S, C)
    token mixing:    x + W2 · GELU(W1 · LN(x) + b1) + b2     W1: (D_S, S) acts from the left
    channel mixing:  x + GELU(LN(x) · W3ᵀ + b3) · W4ᵀ + b4   W3: (D_C, C), an ordinary Linear
    head:            LN -> mean over S -> Linear(C, num_classes)

Left-multiplying by W1 is the same as the paper's "transpose, Dense over tokens,
transpose back", without the two copies. Parameters keep PyTorch's usual layouts (Linear
weights are out × in, the stem a Conv2d weight), so the module works with every tool that
expects them.
"""

from __future__ import annotations

import torch
from torch import nn

from . import autocast_cache, onednn, token_products
from .base import MlpFamilyModel
from .config import MixerConfig
from .fastpath import traced
from .gelu import GELU, gelu_
from .layers import PatchEmbed, drop_path
from .resize import TokenResize, token_mlp_weights

__all__ = [
    "ChannelMixingMlp",
    "MixerBlock",
    "Mlp",
    "MlpMixer",
    "PatchEmbed",
    "TokenMixingMlp",
    "drop_path",
]


class Mlp(nn.Module):
    """Dense -> GELU -> Dropout -> Dense -> Dropout: the two MLPs' layers, without a forward."""

    def __init__(self, dim: int, hidden: int, gelu: str, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = GELU(approximate=gelu)  # tanh form: the fused CPU kernel (models/gelu.py)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def gelu_dropout(self, h: torch.Tensor) -> torch.Tensor:
        """Dropout(GELU(h)); in inference GELU overwrites h, a product's output used only here."""
        if self.training or torch.is_grad_enabled():
            return self.drop(self.act(h))
        return gelu_(h, self.act.approximate)


class ChannelMixingMlp(Mlp):
    """Dense -> GELU -> Dense over the last axis (C -> D_C -> C), shared by all tokens.

    CPU inference runs over pieces of the token rows so that the (rows, D_C) hidden activation
    stays under ``hidden_bytes_per_piece``: glibc serves bigger blocks with fresh pages from
    the OS at every allocation, which costs as much as the GELU. Smaller pieces are reused
    from the heap (and peak memory drops). Training and GPUs keep one product.
    """

    hidden_bytes_per_piece = 16 * 2**20

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = self._pieces(x)
        if pieces == 1:
            return self.drop(self._mlp(x))
        rows = x.reshape(-1, x.shape[-1]).tensor_split(pieces)
        return torch.cat([self._mlp(part) for part in rows]).view(x.shape)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        fused = onednn.mlp(self.fc1, self.fc2, self.act.approximate, x)  # CPU inference only
        if fused is not None:
            return fused
        # linear_module: oneDNN products in fp32 CPU training; in CPU autocast inference,
        # weights cast once (autocast_cache), not every call
        h = self.gelu_dropout(onednn.linear_module(self.fc1, x))
        return onednn.linear_module(self.fc2, h)

    def _pieces(self, x: torch.Tensor) -> int:
        """1, or the number of pieces for eager CPU inference (not traced: shapes stay free)."""
        if self.training or torch.is_grad_enabled() or x.device.type != "cpu":
            return 1
        if traced():
            return 1
        hidden_bytes = x.numel() // x.shape[-1] * self.fc1.out_features * x.element_size()
        return max(1, -(-hidden_bytes // self.hidden_bytes_per_piece))  # ceil; 1 if empty


class TokenMixingMlp(Mlp):
    """Dense -> GELU -> Dense over the token axis (S -> D_S -> S), shared by all channels.

    Takes and returns (B, S, C). ``fc1.weight`` is (D_S, S), as in a Linear over tokens; it is
    applied from the left, so the biases broadcast along the channel axis.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One batched product per layer, the weight broadcast over the batch (no copy);
        # torch.matmul would transpose x instead. token_products: where the bias goes.
        weight = autocast_cache.weight  # (cached copies in autocast inference)
        h = token_products.affine(weight(self.fc1, "weight"), weight(self.fc1, "bias"), x)
        h = self.gelu_dropout(h)  # (B, D_S, C)
        out = token_products.affine(weight(self.fc2, "weight"), weight(self.fc2, "bias"), h)
        return self.drop(out)  # (B, S, C)


class MixerBlock(nn.Module):
    """x += TokenMixing(LN(x)); x += ChannelMixing(LN(x)), for x of shape (B, S, C).

    The two MLPs come from `token_mlp` and `channel_mlp`, which gMixer overrides.
    """

    def __init__(self, config: MixerConfig, drop_path_rate: float) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)
        self.token_mixing = self.token_mlp(config)
        self.channel_norm = nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)
        self.channel_mixing = self.channel_mlp(config)
        self.drop_path_rate = drop_path_rate
        self.drop_path_scale = config.drop_path_scale

    def token_mlp(self, config: MixerConfig) -> nn.Module:
        s, d_s = config.num_tokens, config.tokens_mlp_dim
        return TokenMixingMlp(s, d_s, config.gelu, config.drop_rate)

    def channel_mlp(self, config: MixerConfig) -> nn.Module:
        c, d_c = config.hidden_dim, config.channels_mlp_dim
        return ChannelMixingMlp(c, d_c, config.gelu, config.drop_rate)

    def resized_token_weights(self, resize: TokenResize) -> dict[str, torch.Tensor]:
        """This block's token-mixing weights at another patch grid (models/resize.py)."""
        return token_mlp_weights(self.token_mixing, resize, "token_mixing.")

    def _residual(self, branch: torch.Tensor) -> torch.Tensor:
        return drop_path(branch, self.drop_path_rate, self.training, self.drop_path_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Residuals are added in place into the branch output, a fresh tensor that backward
        # does not need: one (B, S, C) allocation less per branch.
        x = self._residual(self.token_mixing(self.token_norm(x))).add_(x)
        return self._residual(self.channel_mixing(self.channel_norm(x))).add_(x)


class MlpMixer(MlpFamilyModel):
    """MLP-Mixer. ``MlpMixer(config)`` or ``MlpMixer(img_size=32, patch_size=4, ...)``.

    ``forward(images)`` maps (B, in_chans, H, W) to logits (B, num_classes), or to pooled
    features (B, C) when ``num_classes == 0``. The shared API is in `MlpFamilyModel`;
    ``grad_checkpointing`` is a run-time keyword there, not part of the (saved) config.
    """

    family = "mixer"
    token_weight = "token_mixing.fc1.weight"  # gMixer's too: its rows are values, then gates

    def make_block(self, config: MixerConfig, drop_path_rate: float) -> nn.Module:
        return MixerBlock(config, drop_path_rate)
