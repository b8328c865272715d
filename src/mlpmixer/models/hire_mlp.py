"""Hire-MLP: vision MLP via hierarchical rearrangement (Guo et al., CVPR 2022, arXiv 2108.13341).

A four-level pyramid of NCHW maps (stem: 7x7 stride-4 conv, BN, ReLU; between levels: 3x3
stride-2 conv, BN, ReLU). Each block is

    x = x + HireMLP(BN(x));   x = x + Mlp(BN(x))

The token mixer of x (B, C, H, W), with p the level's region size and s the block's step:

    cross-region shift   rows move down by s, circularly: x'[i] = x[(i - s) mod H]
    inner-region         cut the rows into regions of p (the last one completed circularly:
      rearrangement      row i >= H reads row i mod H), stack each region's p rows on the
                         channels (channel c·p + r holds the region's row r of channel c):
                         (B, C·p, ceil(H/p), W)
    mix                  1x1 conv C·p -> C/2 (no bias), BN, ReLU, 1x1 conv C/2 -> C·p
    restore              unstack, keep the first H rows, shift back up by s
    h = that along the height, w = the same along the width, c = mlp_c(x) (1x1 conv)
    out = proj(a_0·h + a_1·w + a_2·c), a = softmax over 3 of Mlp_{C -> C/4 -> 3C}(mean_HW(
          h + w + c)), its output 3c + k weighting branch k of channel c

The step of block j of a level is (j mod step_stride)·step_dilation, so consecutive blocks
alternate their regions' offsets. This is the official code's circular mode (``step_pad_mode``
and ``pixel_pad_mode`` 'c', the only one its models use), written as one gather of row
indices (i - s) mod H.

Input sizes: any H, W >= 3; no weight depends on the size. (The official code's circular
``F.pad`` fails where a level's map is smaller than the padding it needs, e.g. a 1-row map with
regions of 3; the wrap-around used here is the same wherever that one runs.)

State-dict keys are the official code's (``patch_embed.proj``, ``network.{2i}.{j}.attn.
mlp_h1``, ``network.{2i+1}.proj`` for the downsampling, ``norm``, ``head``), BatchNorm
running statistics included; official checkpoints (DeiT's format: ``{"model": ...}``) load
with strict=True. Markers only this family has: ``attn.mlp_h1_norm.weight``,
``attn.mlp_w1.weight``.
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


@dataclass(frozen=True)
class HireMlpConfig(ZooConfig):
    """Architecture and preprocessing of one Hire-MLP. Defaults are Hire-MLP-Tiny at 224."""

    FAMILY = "hiremlp"
    STAGES = 4

    family: str = "hiremlp"
    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    depths: tuple[int, ...] = (2, 2, 4, 2)
    mlp_ratios: tuple[float, ...] = (4, 4, 4, 4)
    region_size: tuple[int, ...] = (4, 3, 3, 2)  # p of each level (official ``pixel``)
    step_stride: tuple[int, ...] = (2, 2, 3, 2)  # blocks per cycle of steps
    step_dilation: tuple[int, ...] = (2, 2, 1, 1)  # rows (columns) per step
    drop_rate: float = 0.0  # dropout before the head (the official models have none)
    drop_path_rate: float = 0.0  # official training: Tiny 0.0, Base 0.2
    crop_pct: float = 0.875  # the eval transform of its train.py (DeiT): resize 256, crop 224

    def __post_init__(self) -> None:
        self._check_common()
        for name in ("embed_dims", "depths", "region_size", "step_stride", "step_dilation"):
            self._per_stage(name)
        self._per_stage("mlp_ratios", check="number")
        small = [d for d in self.embed_dims if d < 4]
        if small:
            raise ConfigError(f"embed_dims must be >= 4 (the mixers use C/2, C/4), got {small[0]}")
        if min(self.img_size) < STEM_KERNEL - 2 * STEM_PAD:
            raise ConfigError(f"img_size must be at least 3 pixels a side, got {self.img_size}")
        self._check_size(param_count(self))

    def step(self, level: int, block: int) -> int:
        """The cross-region shift of ``block`` in ``level``."""
        return block % self.step_stride[level] * self.step_dilation[level]


def rearranged(x: torch.Tensor, p: int, step: int, axis: int) -> torch.Tensor:
    """(B, C, H, W) -> regions of p along ``axis`` stacked on channels, after a circular shift.

    axis 2: (B, C·p, ceil(H/p), W), channel c·p + r of region g holds row (g·p + r - step)
    mod H of channel c. axis 3 the same along the width.
    """
    n = x.shape[axis]
    regions = -(-n // p)
    rows = (torch.arange(regions * p, device=x.device) - step) % n
    x = x.index_select(axis, rows)
    b, c, h, w = x.shape
    if axis == 2:
        return x.reshape(b, c, regions, p, w).transpose(2, 3).reshape(b, c * p, regions, w)
    return x.reshape(b, c, h, regions, p).permute(0, 1, 4, 2, 3).reshape(b, c * p, h, regions)


def restored(y: torch.Tensor, p: int, step: int, axis: int, n: int) -> torch.Tensor:
    """Inverse of `rearranged`: (B, C·p, regions, W) -> (B, C, n, W), shifted back by ``step``."""
    b, cp, h, w = y.shape
    c = cp // p
    if axis == 2:
        y = y.reshape(b, c, p, h, w).transpose(2, 3).reshape(b, c, h * p, w)
    else:
        y = y.reshape(b, c, p, h, w).permute(0, 1, 3, 4, 2).reshape(b, c, h, w * p)
    rows = (torch.arange(n, device=y.device) + step) % n
    return y.index_select(axis, rows)


class HireMLP(nn.Module):
    """The token mixer (see the module docstring): (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, dim: int, region_size: int, step: int) -> None:
        super().__init__()
        self.pixel, self.step = region_size, step
        wide = dim * region_size
        self.mlp_h1 = nn.Conv2d(wide, dim // 2, 1, bias=False)
        self.mlp_h1_norm = nn.BatchNorm2d(dim // 2)
        self.mlp_h2 = nn.Conv2d(dim // 2, wide, 1)
        self.mlp_w1 = nn.Conv2d(wide, dim // 2, 1, bias=False)
        self.mlp_w1_norm = nn.BatchNorm2d(dim // 2)
        self.mlp_w2 = nn.Conv2d(dim // 2, wide, 1)
        self.mlp_c = nn.Conv2d(dim, dim, 1)
        # one ReLU per branch, not one module called twice: a shared module is one "source
        # partition" with two outputs in an exported graph, which PT2E's X86InductorQuantizer
        # refuses (static int8); ReLU has no state, so the state dict is the same
        self.act_h, self.act_w = nn.ReLU(), nn.ReLU()
        self.reweight = Mlp(dim, dim // 4, 3 * dim, layout="NCHW")
        self.proj = nn.Conv2d(dim, dim, 1)
        self.proj_drop = nn.Dropout(0.0)

    def _along(self, x: torch.Tensor, axis: int, fc1, norm, act, fc2) -> torch.Tensor:
        y = rearranged(x, self.pixel, self.step, axis)
        y = fc2(act(norm(fc1(y))))
        return restored(y, self.pixel, self.step, axis, x.shape[axis])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._along(x, 2, self.mlp_h1, self.mlp_h1_norm, self.act_h, self.mlp_h2)
        w = self._along(x, 3, self.mlp_w1, self.mlp_w1_norm, self.act_w, self.mlp_w2)
        c = self.mlp_c(x)
        return self.proj_drop(self.proj(reweighted_sum([h, w, c], self.reweight, "NCHW")))


class HireBlock(nn.Module):
    """x + HireMLP(BN(x)), then x + Mlp(BN(x)); (B, C, H, W) in and out."""

    def __init__(self, config: HireMlpConfig, level: int, block: int, drop_path: float) -> None:
        super().__init__()
        dim = config.embed_dims[level]
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = HireMLP(dim, config.region_size[level], config.step(level, block))
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratios[level]), layout="NCHW")
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def conv_bn_relu(n_in: int, n_out: int, kernel: int, stride: int, pad: int) -> ConvNorm:
    """A strided conv, BN, ReLU: the stem (7x7 stride 4, pad 2; the official
    ``PatchEmbedOverlapping``) and the downsampling between levels (3x3 stride 2, pad 1)."""
    return ConvNorm(n_in, n_out, kernel, stride, pad, nn.BatchNorm2d(n_out), nn.ReLU())


class HireMlp(StagedNet):
    """Hire-MLP from its config. ``forward_features`` gives (B, C_4, H/32, W/32), NCHW."""

    family = "hiremlp"

    def __init__(self, config: HireMlpConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.embed_dims
        self.patch_embed = conv_bn_relu(
            config.in_chans, dims[0], STEM_KERNEL, STEM_STRIDE, STEM_PAD
        )
        rates = drop_path_rates(config.depths, config.drop_path_rate)
        network: list[nn.Module] = []
        for i, level_rates in enumerate(rates):
            if i:
                network.append(
                    conv_bn_relu(dims[i - 1], dims[i], DOWN_KERNEL, DOWN_STRIDE, DOWN_PAD)
                )
            blocks = (HireBlock(config, i, j, p) for j, p in enumerate(level_rates))
            network.append(nn.Sequential(*blocks))
        self._network_stages(network, range(0, 2 * len(dims), 2))  # downsampling between
        self.norm = nn.BatchNorm2d(dims[-1])
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = linear_head(dims[-1], config.num_classes)
        self._describe_stages([f"network.{2 * i}" for i in range(len(dims))], dims,
                              [STEM_STRIDE * DOWN_STRIDE**i for i in range(len(dims))])  # fmt: skip
        # the official init: also the convolutions (the 1x1 "linear" layers are convs here)
        self.apply(lambda m: official_init(m, (nn.Linear, nn.Conv2d)))


def _block_params(config: HireMlpConfig, level: int) -> int:
    c, p = config.embed_dims[level], config.region_size[level]
    hidden = int(c * config.mlp_ratios[level])
    half = c // 2
    branch = c * p * half + 2 * half + half * c * p + c * p  # fc1 (no bias), BN, fc2
    reweight = c * (c // 4) + c // 4 + (c // 4) * 3 * c + 3 * c
    mixer = 2 * branch + (c * c + c) + reweight + (c * c + c)  # h, w, mlp_c, reweight, proj
    mlp = c * hidden + hidden + hidden * c + c
    return 2 * 2 * c + mixer + mlp  # two BNs


def param_count(config: HireMlpConfig, include_head: bool = True) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted)."""
    dims = config.embed_dims
    total = config.in_chans * STEM_KERNEL**2 * dims[0] + 3 * dims[0]  # conv, bias, BN
    for i, depth in enumerate(config.depths):
        total += depth * _block_params(config, i)
        if i:
            total += dims[i - 1] * 9 * dims[i] + 3 * dims[i]
    total += 2 * dims[-1]
    if include_head and config.num_classes:
        total += dims[-1] * config.num_classes + config.num_classes
    return total


def macs_per_image(config: HireMlpConfig, include_head: bool = True) -> int:
    """Multiply-accumulates of the convolutions and the head for one ``img_size`` image.

    Per block of C channels on an h x w map with regions of p: the height branch runs its two
    1x1 convs (C·p <-> C/2) on ceil(h/p)·w positions, the width branch on h·ceil(w/p); plus
    h·w·(2·C² mlp_c and proj + 2·r·C² MLP) and C·C/4 + C/4·3C (reweight, on the pooled
    vector). Norms, activations, softmax and adds are left out.
    """
    dims = config.embed_dims
    sizes = level_sizes(config.img_size)
    total = sizes[0][0] * sizes[0][1] * config.in_chans * STEM_KERNEL**2 * dims[0]
    for i, (depth, (h, w)) in enumerate(zip(config.depths, sizes, strict=True)):
        c, p = dims[i], config.region_size[i]
        hidden = int(c * config.mlp_ratios[i])
        regions = -(-h // p) * w + h * -(-w // p)
        per_block = regions * 2 * c * p * (c // 2) + h * w * (2 * c * c + 2 * c * hidden)
        total += depth * (per_block + c * (c // 4) + (c // 4) * 3 * c)
        if i:
            total += h * w * 9 * dims[i - 1] * c
    if include_head:
        total += dims[-1] * config.num_classes
    return total


VARIANTS: dict[str, HireMlpConfig] = {
    "hiremlp_tiny": HireMlpConfig(depths=(2, 2, 4, 2)),
    "hiremlp_small": HireMlpConfig(depths=(3, 4, 10, 3)),
    "hiremlp_base": HireMlpConfig(depths=(4, 6, 24, 3)),
    "hiremlp_large": HireMlpConfig(embed_dims=(96, 192, 384, 768), depths=(4, 6, 24, 3)),
}
"""The official ImageNet-1k 224 models (``hire_mlp_tiny`` ... ``hire_mlp_large``)."""


# --------------------------------------------------------------------------- the family spec


def config_from_state(
    state: Mapping[str, torch.Tensor], img_size: Any, fields: Any
) -> HireMlpConfig:
    """The `HireMlpConfig` of an official-layout state dict: levels at ``network.{2i}``; the
    region size p from mlp_h1 (C·p inputs). The steps are no shapes: the variant's."""
    stem = shape_of(state, "patch_embed.proj.weight", 4)
    levels = pyramid_levels(state)
    dims = levels["embed_dims"]
    regions = [  # mlp_h1 reads C·p channels
        shape_of(state, f"network.{2 * k}.0.attn.mlp_h1.weight", 4)[1] // d
        for k, d in enumerate(dims)
    ]
    architecture = {
        "in_chans": stem[1],
        **levels,
        "region_size": regions,
        "num_classes": head_classes(state),
    }
    return config_from_shapes(HireMlpConfig, VARIANTS, architecture, img_size, fields)


LAYER_KINDS = (
    ("patch_embed.*", "stem"),
    # 1x1 convs on regions rearranged into channels: they mix the positions of a region
    ("network.*.attn.mlp_h*", "token-mixing"),
    ("network.*.attn.mlp_w*", "token-mixing"),
    ("network.*.attn.mlp_c", "channel-mixing"),
    ("network.*.attn.reweight.*", "reweight"),
    ("network.*.attn.proj", "channel-mixing"),
    ("network.*.mlp.*", "channel-mixing"),
    ("network.*.proj", "downsample"),
)

SPEC = register_family(
    FamilySpec(
        name="hiremlp",
        config_class=HireMlpConfig,
        model=HireMlp,
        params=param_count,
        macs=macs_per_image,
        paper=Paper(
            "Hire-MLP", "2108.13341", "mit", "https://github.com/ggjy/Hire-Wave-MLP.pytorch"
        ),
        markers=("patch_embed.proj.weight", "network.0.0.attn.mlp_h1_norm.weight"),
        config_from_state=config_from_state,
        any_size=True,  # no layer depends on the image size
        variants=VARIANTS,
        description="hierarchical rearrangement of regions, pyramid, any input size",
        layer_kinds=LAYER_KINDS,
    )
)
