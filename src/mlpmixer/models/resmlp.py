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

from collections.abc import Mapping
from functools import partial

import torch
from torch import nn

from .base import MlpFamilyModel
from .config import MixerConfig
from .flops import linear_params, stacked_macs, stacked_params
from .init import linear
from .layers import PLAIN, Affine, LayerSet, drop_path
from .resize import TokenResize, resized_square_config, token_linear_weights
from .spec import FamilySpec, Paper, TimmNames, register_family
from .state_shapes import shape_of, stacked_config_from_state


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

    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        return ResMlpBlock(config, drop_path_rate, layers)

    def make_norm(self, config: MixerConfig) -> nn.Module:
        return Affine(config.hidden_dim)


# ----- the family's entry ---------------------------------------------------------------


def block_macs(config: MixerConfig) -> int:
    """C·S² (one token Linear) + 2·S·C·D_C (channel MLP)."""
    s, c = config.num_tokens, config.hidden_dim
    return c * s * s + 2 * s * c * config.channels_mlp_dim


def block_params(config: MixerConfig) -> int:
    """Two Affines and two LayerScales (6·C), the S × S token Linear, the channel MLP."""
    s, c, d_c = config.num_tokens, config.hidden_dim, config.channels_mlp_dim
    return 6 * c + linear_params(s, s) + linear_params(c, d_c) + linear_params(d_c, c)


def widths(state: Mapping[str, torch.Tensor]) -> tuple[int, int, int]:
    """(S, S, D_C): the token layer is S × S (``tokens_mlp_dim`` kept equal to S)."""
    s = shape_of(state, "blocks.0.token_mixing.weight", 2)[0]
    return s, s, shape_of(state, "blocks.0.channel_mixing.fc1.weight", 2)[0]


LAYER_KINDS = (
    ("stem.*", "stem"),
    ("blocks.*.token_mixing", "token-mixing"),  # one Linear across patches
    ("blocks.*.channel_mixing.*", "channel-mixing"),
)

SPEC = register_family(
    FamilySpec(
        name="resmlp",
        config_class=MixerConfig,
        model=ResMlp,
        params=partial(stacked_params, block_params=block_params),
        macs=partial(stacked_macs, block_macs=block_macs),
        paper=Paper(
            "ResMLP", "2105.03404", "apache-2.0", "https://github.com/facebookresearch/deit"
        ),
        markers=("blocks.0.token_scale",),
        config_from_state=partial(stacked_config_from_state, family="resmlp", widths=widths),
        token_weight="token_mixing.weight",
        resize=resized_square_config,
        timm=TimmNames(
            {
                "norm1": "token_norm",
                "linear_tokens": "token_mixing",
                "ls1": "token_scale",
                "norm2": "channel_norm",
                "mlp_channels": "channel_mixing",
                "ls2": "channel_scale",
            },
            ("blocks.0.linear_tokens.weight",),
            reshape={".alpha": (1, 1, -1), ".beta": (1, 1, -1)},  # timm's Affine: (1, 1, C)
            name_fixes=("channels_mlp_dim",),
        ),
        unused_fields=("tokens_mlp_dim", "norm_eps"),
        description="Affine norms, one S × S token Linear, LayerScale",
        layer_kinds=LAYER_KINDS,
    )
)
