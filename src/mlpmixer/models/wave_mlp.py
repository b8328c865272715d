"""Wave-MLP: tokens as waves, mixed by phase-aware token mixing (Tang et al., CVPR 2022,
arXiv 2111.12294).

A four-level pyramid of NCHW maps (stem: 7x7 stride-4 conv; between levels: 3x3 stride-2
conv; each followed by a norm, or not for M and B). Each block is

    x = x + PATM(N(x));   x = x + Mlp(N(x))

with N a BatchNorm (T) or a one-group GroupNorm (S, M, B). The phase-aware token mixing
(PATM) of x (B, C, H, W), every ``fc`` a 1x1 conv:

    amplitude  A_h = fc_h(x), A_w = fc_w(x)                       (no bias)
    phase      θ_h = theta_h_conv(x) = ReLU(BN(conv(x))), θ_w likewise (the conv 1x1, or
               3x3 depthwise for the ``_dw`` model)
    wave       Z_h = [A_h·cos θ_h ; A_h·sin θ_h]                     (2C channels: all the
               real parts, then all the imaginary ones)
    token mix  h = tfc_h(Z_h): output channel c sums Z_h channels 2c and 2c+1 over 7
               neighbours along the width (a grouped 1x7 conv, groups=C, no bias);
               w = tfc_w(Z_w) the same along the height (7x1); c = fc_c(x)
    reweight   a = softmax over 3 of Mlp_{C -> C/4 -> 3C}(mean_HW(h + w + c)), output
               3c+k weighting branch k of channel c
    out        proj(a_0·h + a_1·w + a_2·c)

The channel pairing of the grouped conv is the official code's: output channel c < C/2 reads
two real parts, c >= C/2 two imaginary parts. Kept as is so the weights mean the same.

Input sizes: any H, W >= 3 (the strided convs round: stem (H-3)//4 + 1, then ceil(h/2)); no
weight depends on the size.

State-dict keys are the official code's (``patch_embed.proj``, ``network.{2i}.{j}.attn.
tfc_h``, ``network.{2i+1}.proj`` for the downsampling, ``norm``, ``head``); BatchNorm running
statistics included. Official checkpoints (timm's training format: ``state_dict`` /
``state_dict_ema``) load with strict=True. Markers only this family has:
``attn.tfc_h.weight``, ``attn.theta_h_conv.0.weight``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .spec import FamilySpec, Paper, register_family
from .staged import (
    DOWN_KERNEL,
    DOWN_PAD,
    DOWN_STRIDE,
    STEM_KERNEL,
    STEM_PAD,
    STEM_STRIDE,
    ConvNorm,
    DropPath,
    Mlp,
    StagedNet,
    ZooConfig,
    config_from_shapes,
    drop_path_rates,
    head_classes,
    level_sizes,
    linear_head,
    official_init,
    pyramid_levels,
    reweighted_sum,
)
from .state_shapes import shape_of

NORMS = ("batch", "group")  # BatchNorm2d, or GroupNorm with one group (the official MyNorm)
THETA_CONVS = ("fc", "depthwise")  # how the phase is estimated: 1x1 conv or 3x3 depthwise
TOKEN_KERNEL = 7  # the taps of tfc_h / tfc_w


@dataclass(frozen=True)
class WaveMlpConfig(ZooConfig):
    """Architecture and preprocessing of one Wave-MLP. Defaults are Wave-MLP-T at 224."""

    FAMILY = "wavemlp"
    STAGES = 4

    family: str = "wavemlp"
    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    depths: tuple[int, ...] = (2, 2, 4, 2)
    mlp_ratios: tuple[float, ...] = (4, 4, 4, 4)
    norm: str = "batch"  # of the blocks, the stem, the downsampling and the final norm
    stem_norm: bool = True  # norm after the stem and downsampling convs (official ds_use_norm)
    theta_conv: str = "fc"  # the phase conv (the official ``mode``: "fc" or else depthwise)
    qkv_bias: bool = False  # biases of fc_h, fc_w, fc_c
    drop_rate: float = 0.0  # dropout before the head (the official models have none)
    drop_path_rate: float = 0.0  # official training: 0.1
    crop_pct: float = 0.9  # the official default_cfg, which its train_wave.py evaluates with

    def __post_init__(self) -> None:
        self._check_common()
        self._per_stage("embed_dims")
        self._per_stage("depths")
        self._per_stage("mlp_ratios", check="number")
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.theta_conv not in THETA_CONVS:
            raise ConfigError(f"theta_conv must be one of {THETA_CONVS}, got {self.theta_conv!r}")
        self._flags("stem_norm", "qkv_bias")
        small = [d for d in self.embed_dims if d < 4]
        if small:
            raise ConfigError(f"embed_dims must be >= 4 (reweight uses C/4), got {small[0]}")
        if min(self.img_size) < STEM_KERNEL - 2 * STEM_PAD:
            raise ConfigError(f"img_size must be at least 3 pixels a side, got {self.img_size}")
        self._check_size(param_count(self))


def make_norm(kind: str, dim: int) -> nn.Module:
    return nn.BatchNorm2d(dim) if kind == "batch" else nn.GroupNorm(1, dim)


def phase_conv(dim: int, kind: str) -> nn.Sequential:
    """θ = ReLU(BN(conv(x))): a 1x1 conv, or a 3x3 depthwise conv without bias."""
    if kind == "fc":
        conv = nn.Conv2d(dim, dim, 1)
    else:
        conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(dim), nn.ReLU())


class PATM(nn.Module):
    """Phase-aware token mixing: (B, C, H, W) -> (B, C, H, W) (see the module docstring)."""

    def __init__(self, dim: int, theta_conv: str = "fc", qkv_bias: bool = False) -> None:
        super().__init__()
        k, pad = TOKEN_KERNEL, TOKEN_KERNEL // 2
        self.fc_h = nn.Conv2d(dim, dim, 1, bias=qkv_bias)
        self.fc_w = nn.Conv2d(dim, dim, 1, bias=qkv_bias)
        self.fc_c = nn.Conv2d(dim, dim, 1, bias=qkv_bias)
        # named as in the official code: tfc_h mixes along the width, tfc_w along the height
        self.tfc_h = nn.Conv2d(2 * dim, dim, (1, k), padding=(0, pad), groups=dim, bias=False)
        self.tfc_w = nn.Conv2d(2 * dim, dim, (k, 1), padding=(pad, 0), groups=dim, bias=False)
        self.reweight = Mlp(dim, dim // 4, 3 * dim, layout="NCHW")
        self.proj = nn.Conv2d(dim, dim, 1)
        self.proj_drop = nn.Dropout(0.0)
        self.theta_h_conv = phase_conv(dim, theta_conv)
        self.theta_w_conv = phase_conv(dim, theta_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tfc_h(wave(self.fc_h(x), self.theta_h_conv(x)))
        w = self.tfc_w(wave(self.fc_w(x), self.theta_w_conv(x)))
        c = self.fc_c(x)
        return self.proj_drop(self.proj(reweighted_sum([h, w, c], self.reweight, "NCHW")))


def wave(amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) twice -> (B, 2C, H, W): real parts A·cos θ, then imaginary parts A·sin θ."""
    return torch.cat([amplitude * torch.cos(phase), amplitude * torch.sin(phase)], dim=1)


class WaveBlock(nn.Module):
    """x + PATM(N(x)), then x + Mlp(N(x)); (B, C, H, W) in and out."""

    def __init__(self, config: WaveMlpConfig, level: int, drop_path: float) -> None:
        super().__init__()
        dim = config.embed_dims[level]
        self.norm1 = make_norm(config.norm, dim)
        self.attn = PATM(dim, config.theta_conv, config.qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = make_norm(config.norm, dim)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratios[level]), layout="NCHW")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def strided_conv(n_in: int, n_out: int, kernel: int, stride: int, pad: int,
                 norm: str, use_norm: bool) -> ConvNorm:  # fmt: skip
    """(B, in, H, W) -> (B, out, H/stride, W/stride): a strided conv, then a norm (or none).

    The stem (7x7, stride 4, pad 2; the official ``PatchEmbedOverlapping``) and the
    downsampling between levels (3x3, stride 2, pad 1; ``Downsample``)."""
    return ConvNorm(n_in, n_out, kernel, stride, pad, make_norm(norm, n_out) if use_norm else None)


class WaveMlp(StagedNet):
    """Wave-MLP from its config. ``forward_features`` gives (B, C_4, H/32, W/32), NCHW."""

    family = "wavemlp"

    def __init__(self, config: WaveMlpConfig) -> None:
        super().__init__()
        self.config = config
        dims, norm, use_norm = config.embed_dims, config.norm, config.stem_norm
        self.patch_embed = strided_conv(
            config.in_chans, dims[0], STEM_KERNEL, STEM_STRIDE, STEM_PAD, norm, use_norm
        )
        rates = drop_path_rates(config.depths, config.drop_path_rate)
        network: list[nn.Module] = []
        for i, level_rates in enumerate(rates):
            if i:
                network.append(strided_conv(dims[i - 1], dims[i], DOWN_KERNEL, DOWN_STRIDE,
                                            DOWN_PAD, norm, use_norm))  # fmt: skip
            network.append(nn.Sequential(*(WaveBlock(config, i, p) for p in level_rates)))
        self._network_stages(network, range(0, 2 * len(dims), 2))  # downsampling between
        self.norm = make_norm(norm, dims[-1])
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = linear_head(dims[-1], config.num_classes)
        self._describe_stages([f"network.{2 * i}" for i in range(len(dims))], dims,
                              [STEM_STRIDE * DOWN_STRIDE**i for i in range(len(dims))])  # fmt: skip
        self.apply(official_init)


def _norm_params(config: WaveMlpConfig, dim: int) -> int:
    return 2 * dim  # BatchNorm and GroupNorm: a weight and a bias per channel


def _patm_params(config: WaveMlpConfig, c: int) -> int:
    fcs = 3 * (c * c + (c if config.qkv_bias else 0))
    token = 2 * c * 2 * TOKEN_KERNEL  # two grouped convs: C outputs x 2 inputs x 7 taps
    reweight = c * (c // 4) + c // 4 + (c // 4) * 3 * c + 3 * c
    phase = c * c + c if config.theta_conv == "fc" else 9 * c
    return fcs + token + reweight + (c * c + c) + 2 * (phase + 2 * c)


def _block_params(config: WaveMlpConfig, level: int) -> int:
    c = config.embed_dims[level]
    hidden = int(c * config.mlp_ratios[level])
    mlp = c * hidden + hidden + hidden * c + c
    return 2 * _norm_params(config, c) + _patm_params(config, c) + mlp


def param_count(config: WaveMlpConfig, include_head: bool = True) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted)."""
    dims = config.embed_dims
    stem = config.in_chans * STEM_KERNEL**2 * dims[0] + dims[0]
    total = stem + (_norm_params(config, dims[0]) if config.stem_norm else 0)
    for i, depth in enumerate(config.depths):
        total += depth * _block_params(config, i)
        if i:
            down = dims[i - 1] * 9 * dims[i] + dims[i]
            total += down + (_norm_params(config, dims[i]) if config.stem_norm else 0)
    total += _norm_params(config, dims[-1])
    if include_head and config.num_classes:
        total += dims[-1] * config.num_classes + config.num_classes
    return total


def macs_per_image(config: WaveMlpConfig, include_head: bool = True) -> int:
    """Multiply-accumulates of the convolutions and the head for one ``img_size`` image.

    Per block of C channels on N pixels: N·(3C² fc_h/fc_w/fc_c + C² proj + 2·C² phase convs
    (2·9C depthwise) + 2·2·7C token mixing + 2·r·C² MLP) + C·C/4 + C/4·3C (reweight, on
    the pooled vector). Norms, activations, cos/sin, softmax and adds are left out.
    """
    dims, sizes = config.embed_dims, level_sizes(config.img_size)
    total = sizes[0][0] * sizes[0][1] * config.in_chans * STEM_KERNEL**2 * dims[0]
    for i, (depth, (h, w)) in enumerate(zip(config.depths, sizes, strict=True)):
        c, n = dims[i], h * w
        phase = c * c if config.theta_conv == "fc" else 9 * c
        hidden = int(c * config.mlp_ratios[i])
        per_pixel = 4 * c * c + 2 * phase + 2 * 2 * TOKEN_KERNEL * c + 2 * c * hidden
        total += depth * (n * per_pixel + c * (c // 4) + (c // 4) * 3 * c)
        if i:
            total += n * 9 * dims[i - 1] * c
    if include_head:
        total += dims[-1] * config.num_classes
    return total


_T = {"embed_dims": (64, 128, 320, 512), "depths": (2, 2, 4, 2)}
_GN = {"norm": "group"}
VARIANTS: dict[str, WaveMlpConfig] = {
    "wavemlp_t_dw": WaveMlpConfig(**_T, theta_conv="depthwise"),
    "wavemlp_t": WaveMlpConfig(**_T),
    "wavemlp_s": WaveMlpConfig(embed_dims=(64, 128, 320, 512), depths=(2, 3, 10, 3), **_GN),
    "wavemlp_m": WaveMlpConfig(
        embed_dims=(64, 128, 320, 512),
        depths=(3, 4, 18, 3),
        mlp_ratios=(8, 8, 4, 4),
        stem_norm=False,
        **_GN,
    ),
    "wavemlp_b": WaveMlpConfig(
        embed_dims=(96, 192, 384, 768),
        depths=(2, 2, 18, 2),
        stem_norm=False,
        crop_pct=0.875,
        **_GN,
    ),
}
"""The official ImageNet-1k 224 models (``WaveMLP_T_dw``, ``WaveMLP_T`` ... ``WaveMLP_B``)."""


# --------------------------------------------------------------------------- the family spec


def config_from_state(
    state: Mapping[str, torch.Tensor], img_size: Any, fields: Any
) -> WaveMlpConfig:
    """The `WaveMlpConfig` of an official-layout state dict: levels at ``network.{2i}``;
    BatchNorm (running statistics) or GroupNorm; a stem norm or none; the phase conv 1x1
    (``fc``) or 3x3 depthwise from its kernel."""
    stem = shape_of(state, "patch_embed.proj.weight", 4)
    levels = pyramid_levels(state)
    theta = shape_of(state, "network.0.0.attn.theta_h_conv.0.weight", 4)
    architecture = {
        "in_chans": stem[1],
        **levels,
        "norm": "batch" if "network.0.0.norm1.running_mean" in state else "group",
        "stem_norm": "patch_embed.norm.weight" in state,
        "theta_conv": "fc" if theta[1] > 1 else "depthwise",
        "qkv_bias": "network.0.0.attn.fc_h.bias" in state,
        "num_classes": head_classes(state),
    }
    return config_from_shapes(WaveMlpConfig, VARIANTS, architecture, img_size, fields)


LAYER_KINDS = (
    ("patch_embed.*", "stem"),
    ("network.*.attn.tfc_h", "token-mixing"),  # grouped 1x7 / 7x1 convs over the waves
    ("network.*.attn.tfc_w", "token-mixing"),
    ("network.*.attn.theta_*", "channel-mixing"),  # 1x1 conv estimating the phases
    ("network.*.attn.fc_*", "channel-mixing"),  # 1x1 convs: amplitudes and the c branch
    ("network.*.attn.reweight.*", "reweight"),
    ("network.*.attn.proj", "channel-mixing"),
    ("network.*.mlp.*", "channel-mixing"),
    ("network.*.proj", "downsample"),
)

SPEC = register_family(
    FamilySpec(
        name="wavemlp",
        config_class=WaveMlpConfig,
        model=WaveMlp,
        params=param_count,
        macs=macs_per_image,
        paper=Paper(
            "Wave-MLP", "2111.12294", "mit", "https://github.com/ggjy/Hire-Wave-MLP.pytorch"
        ),
        markers=("patch_embed.proj.weight", "network.0.0.attn.tfc_h.weight"),
        config_from_state=config_from_state,
        any_size=True,  # no layer depends on the image size
        variants=VARIANTS,
        description="tokens as waves: phase-aware token mixing, pyramid, any input size",
        layer_kinds=LAYER_KINDS,
    )
)
