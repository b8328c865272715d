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

from collections.abc import Mapping
from functools import partial

import torch
from torch import nn

from .base import MlpFamilyModel
from .config import MixerConfig
from .flops import linear_params, stacked_macs, stacked_params
from .layers import PLAIN, LayerSet, Mlp, PatchEmbed, drop_path
from .resize import TokenResize, resized_mlp_config, token_mlp_weights
from .spec import FamilySpec, Paper, TimmNames, register_family
from .state_shapes import shape_of, stacked_config_from_state

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

    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        return MixerBlock(config, drop_path_rate, layers)


# ----- the family's entry ---------------------------------------------------------------


def block_macs(config: MixerConfig) -> int:
    """2·C·S·D_S (token MLP) + 2·S·C·D_C (channel MLP)."""
    s, c = config.num_tokens, config.hidden_dim
    return 2 * c * s * config.tokens_mlp_dim + 2 * s * c * config.channels_mlp_dim


def block_params(config: MixerConfig) -> int:
    """Two LayerNorms (4·C), the token MLP S -> D_S -> S, the channel MLP C -> D_C -> C."""
    s, c = config.num_tokens, config.hidden_dim
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    return (
        4 * c
        + linear_params(s, d_s)
        + linear_params(d_s, s)
        + linear_params(c, d_c)
        + linear_params(d_c, c)
    )


TOKEN_FC1, TOKEN_FC2 = "blocks.0.token_mixing.fc1.weight", "blocks.0.token_mixing.fc2.weight"


def token_mlp_gated(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether the first token MLP is a SwiGLU (gMixer): its fc2 reads half of fc1's width.
    Mixer and gMixer share every key name; only this tells them apart."""
    fc1, fc2 = state.get(TOKEN_FC1), state.get(TOKEN_FC2)
    if fc1 is None or fc2 is None or fc1.ndim != 2 or fc2.ndim != 2:
        return False
    return 2 * fc2.shape[1] == fc1.shape[0]


def token_mlp_widths(state: Mapping[str, torch.Tensor]) -> tuple[int, int, int]:
    """(S, D_S, D_C) of a Mixer or gMixer state dict, from the first block."""
    d_s, s = shape_of(state, TOKEN_FC1, 2)
    return s, d_s, shape_of(state, "blocks.0.channel_mixing.fc1.weight", 2)[0]


def plain_twin(model: nn.Module) -> MlpMixer:
    """An `MlpMixer` of the plain layers with ``model``'s weights (bench's reference)."""
    twin = MlpMixer(model.config, fast=False)
    twin.load_state_dict(model.state_dict())
    param = next(model.parameters())
    return twin.to(device=param.device, dtype=param.dtype).train(model.training)


MIXER_TIMM_NAMES = {
    "norm1": "token_norm",
    "mlp_tokens": "token_mixing",
    "norm2": "channel_norm",
    "mlp_channels": "channel_mixing",
}

MIXER_LAYER_KINDS = (
    ("stem.*", "stem"),
    ("blocks.*.token_mixing.*", "token-mixing"),
    ("blocks.*.channel_mixing.*", "channel-mixing"),
)

SPEC = register_family(
    FamilySpec(
        name="mixer",
        config_class=MixerConfig,
        model=MlpMixer,
        params=partial(stacked_params, block_params=block_params),
        macs=partial(stacked_macs, block_macs=block_macs),
        paper=Paper(
            "MLP-Mixer",
            "2105.01601",
            "apache-2.0",
            "https://github.com/google-research/vision_transformer",
        ),
        markers=(TOKEN_FC1,),
        claims=lambda state: not token_mlp_gated(state),
        config_from_state=partial(
            stacked_config_from_state, family="mixer", widths=token_mlp_widths
        ),
        token_weight="token_mixing.fc1.weight",
        resize=resized_mlp_config,
        timm=TimmNames(MIXER_TIMM_NAMES, ("blocks.0.mlp_tokens.fc1.weight",), any_shape=True),
        unused_fields=("layer_scale_init",),
        plain=plain_twin,
        official_npz=True,
        description="the paper's block: token MLP and channel MLP, LayerNorm, GELU",
        layer_kinds=MIXER_LAYER_KINDS,
    )
)
