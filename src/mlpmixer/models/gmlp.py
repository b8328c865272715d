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

from collections.abc import Mapping
from functools import partial

import torch
from torch import nn

from ..errors import ConfigError
from .base import MlpFamilyModel
from .config import MixerConfig
from .flops import linear_params, stacked_macs, stacked_params
from .init import linear
from .layers import PLAIN, LayerSet, drop_path
from .resize import TokenResize, resized_square_config, token_linear_weights
from .spec import FamilySpec, Paper, TimmNames, register_family
from .state_shapes import shape_of, stacked_config_from_state

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

    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        return GMlpBlock(config, drop_path_rate, layers)

    def gates(self) -> dict[nn.Module, int]:
        # The paper's init: W ~ 0 and b = 1, so the gate passes Z1 through at first.
        return {block.spatial_gating.proj: 0 for block in self.blocks}


# ----- the family's entry ---------------------------------------------------------------


def block_macs(config: MixerConfig) -> int:
    """S·C·D (fc1) + (D/2)·S² (spatial gate) + S·(D/2)·C (fc2)."""
    s, c, d = config.num_tokens, config.hidden_dim, config.channels_mlp_dim
    return s * c * d + d // 2 * s * s + s * d // 2 * c


def block_params(config: MixerConfig) -> int:
    """LayerNorm, fc1, the gate's LayerNorm over D/2 and S × S projection, fc2."""
    s, c, d = config.num_tokens, config.hidden_dim, config.channels_mlp_dim
    return 2 * c + linear_params(c, d) + d + linear_params(s, s) + linear_params(d // 2, c)


def widths(state: Mapping[str, torch.Tensor]) -> tuple[int, int, int]:
    """(S, S, D): the gate's token layer is S × S (``tokens_mlp_dim`` kept equal to S)."""
    s = shape_of(state, "blocks.0.spatial_gating.proj.weight", 2)[0]
    return s, s, shape_of(state, "blocks.0.fc1.weight", 2)[0]


def check_even_width(config: MixerConfig) -> None:
    """``channels_mlp_dim`` even: the spatial gate takes half."""
    if config.channels_mlp_dim % 2:
        raise ConfigError(
            "channels_mlp_dim must be even for gmlp (the gate takes half), "
            f"got {config.channels_mlp_dim}"
        )


LAYER_KINDS = (
    ("stem.*", "stem"),
    ("blocks.*.spatial_gating.*", "token-mixing"),  # the gate's Linear across patches
    ("blocks.*.fc1", "channel-mixing"),
    ("blocks.*.fc2", "channel-mixing"),
)

SPEC = register_family(
    FamilySpec(
        name="gmlp",
        config_class=MixerConfig,
        model=GMlp,
        params=partial(stacked_params, block_params=block_params),
        macs=partial(stacked_macs, block_macs=block_macs),
        paper=Paper(
            "gMLP",
            "2105.08050",
            "apache-2.0",
            "https://github.com/huggingface/pytorch-image-models",
        ),
        markers=("blocks.0.spatial_gating.proj.weight",),
        config_from_state=partial(stacked_config_from_state, family="gmlp", widths=widths),
        validate=check_even_width,
        token_weight="spatial_gating.proj.weight",
        resize=resized_square_config,
        timm=TimmNames(
            {
                "norm": "norm",
                "mlp_channels.fc1": "fc1",
                "mlp_channels.gate": "spatial_gating",
                "mlp_channels.fc2": "fc2",
            },
            ("blocks.0.mlp_channels.gate.proj.weight",),
            name_fixes=("channels_mlp_dim",),
        ),
        unused_fields=("tokens_mlp_dim", "layer_scale_init"),
        description="the spatial gating unit: a gated channel MLP with an S × S token gate",
        layer_kinds=LAYER_KINDS,
    )
)
