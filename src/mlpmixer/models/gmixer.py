"""gMixer: the Mixer with SwiGLU MLPs (Ross Wightman's experiment in timm, ``gmixer_*``).

The block is the Mixer's (`MixerBlock`): x += TokenMLP(LN(x)); x += ChannelMLP(LN(x)), with
each MLP a SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"):

    SwiGLU(x) = W2 · (a ⊙ SiLU(g)) + b2,   [a; g] = W1 · x + b1   W1: (D, n), W2: (n, D/2)

``tokens_mlp_dim`` and ``channels_mlp_dim`` are D, the first layer's width (timm's
``mlp_ratio`` (1, 4) gives D_S = C and D_C = 4C); the gated width is D/2. The token MLP acts
along the token axis of (B, S, C), the channel MLP along the channels.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..errors import ConfigError
from .config import MixerConfig
from .flops import linear_params, stacked_macs, stacked_params
from .init import linear
from .layers import LayerSet
from .mixer import (
    MIXER_LAYER_KINDS,
    MIXER_TIMM_NAMES,
    TOKEN_FC1,
    MixerBlock,
    MlpMixer,
    token_mlp_gated,
    token_mlp_widths,
)
from .resize import TokenResize, resized_mlp_config, token_mlp_weights
from .spec import FamilySpec, Paper, TimmNames, register_family
from .state_shapes import stacked_config_from_state


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


# ----- the family's entry ---------------------------------------------------------------


def block_macs(config: MixerConfig) -> int:
    """C·S·D_S·3/2 + S·C·D_C·3/2: each second layer reads D/2."""
    s, c = config.num_tokens, config.hidden_dim
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    return c * s * (d_s + d_s // 2) + s * c * (d_c + d_c // 2)


def block_params(config: MixerConfig) -> int:
    """Two LayerNorms, the token SwiGLU S -> D_S, D_S/2 -> S, the channel one C -> D_C, D_C/2 -> C."""
    s, c = config.num_tokens, config.hidden_dim
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    return (
        4 * c
        + linear_params(s, d_s)
        + linear_params(d_s // 2, s)
        + linear_params(c, d_c)
        + linear_params(d_c // 2, c)
    )


def check_even_widths(config: MixerConfig) -> None:
    """Both MLP widths even: the gate takes half of each."""
    for name in ("tokens_mlp_dim", "channels_mlp_dim"):
        if getattr(config, name) % 2:
            raise ConfigError(
                f"{name} must be even for gmixer (the gate takes half), got {getattr(config, name)}"
            )


SPEC = register_family(
    FamilySpec(
        name="gmixer",
        config_class=MixerConfig,
        model=GMixer,
        params=partial(stacked_params, block_params=block_params),
        macs=partial(stacked_macs, block_macs=block_macs),
        paper=Paper(
            "gMixer (MLP-Mixer with SwiGLU MLPs, timm)",
            "2105.01601",
            "apache-2.0",
            "https://github.com/huggingface/pytorch-image-models",
        ),
        markers=(TOKEN_FC1,),
        claims=token_mlp_gated,
        config_from_state=partial(
            stacked_config_from_state, family="gmixer", widths=token_mlp_widths
        ),
        validate=check_even_widths,
        token_weight="token_mixing.fc1.weight",  # its rows are values, then gates
        resize=resized_mlp_config,
        timm=TimmNames(
            MIXER_TIMM_NAMES,
            ("blocks.0.mlp_tokens.fc1.weight",),
            name_fixes=("tokens_mlp_dim", "channels_mlp_dim"),
        ),
        unused_fields=("gelu", "layer_scale_init"),
        description="the Mixer with SwiGLU token and channel MLPs",
        layer_kinds=MIXER_LAYER_KINDS,
    )
)
