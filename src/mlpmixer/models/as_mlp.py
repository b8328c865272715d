"""AS-MLP: the axial shifted MLP (Lian et al., ICLR 2022, arXiv 2107.08391).

A Swin-like four-level pyramid of NCHW maps. Each block is

    x = x + AxialShift(GN(x));   x = x + Mlp(GN(x))
    AxialShift(x) = conv3(GN(GELU(conv2_1(shift_w(y))) + GELU(conv2_2(shift_h(y)))))
        with y = GELU(GN(conv1(x)))

where every ``conv`` is a 1x1 convolution (a per-pixel Linear over channels) and GN is a
GroupNorm with one group (normalises each image over C·H·W, the official ``MyNorm``). The
shift cuts the C channels into ``shift_size`` groups of ceil(C/shift_size) channels (the last
group smaller) and moves group g by (shift_size//2 - g)·dilation pixels along one axis,
filling with zeros at the border: out[c, i] = in[c, i + s_g] where that is inside the image,
else 0. This is the official CUDA (cupy) kernel's definition, written here in plain torch.
Between levels, PatchMerging concatenates each 2x2 neighbourhood (order (0,0), (1,0), (0,1),
(1,1)) to 4C channels, GN, then a 1x1 conv to 2C.

Input sizes: any H, W whose 4x4-patch grid (H//4, W//4) halves evenly three times, i.e.
H//4 and W//4 multiples of 8 (224: 56). No weights depend on the size.

State-dict keys are the official code's (``patch_embed.proj``, ``layers.{i}.blocks.{j}.
axial_shift.conv2_1``, ``layers.{i}.downsample.reduction``, ``norm``, ``head``): official
checkpoints (``{"model": state_dict}``, Swin's training format) load with strict=True.
Markers only this family has: ``axial_shift.conv2_1.weight``, ``axial_shift.conv2_2.weight``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, InputShapeError
from .spec import FamilySpec, Paper, register_family
from .staged import (
    ConvNorm,
    DropPath,
    Mlp,
    StagedNet,
    ZooConfig,
    config_from_shapes,
    drop_path_rates,
    head_classes,
    indexed,
    linear_head,
    official_init,
    width_ratio,
)
from .state_shapes import shape_of

PATCH_MERGES = 3  # downsampling steps between the four levels


def check_grid(size: tuple[int, int], patch: int, error: type[Exception]) -> None:
    """The patch grid must halve evenly at each patch merging."""
    grid = (size[0] // patch, size[1] // patch)
    if any(g == 0 or g % 2**PATCH_MERGES for g in grid):
        raise error(
            f"image size {tuple(size)} gives a {grid[0]}x{grid[1]} patch grid; AS-MLP needs "
            f"both sides multiples of {2**PATCH_MERGES} (image sides multiples of "
            f"{patch * 2**PATCH_MERGES})"
        )


@dataclass(frozen=True)
class AsMlpConfig(ZooConfig):
    """Architecture and preprocessing of one AS-MLP. Defaults are AS-MLP-T at 224."""

    FAMILY = "asmlp"
    STAGES = 4

    family: str = "asmlp"
    embed_dim: int = 96  # C of level 0; level i has C·2^i
    depths: tuple[int, ...] = (2, 2, 6, 2)
    shift_size: int = 5  # odd; the number of channel groups and the span of the shift
    shift_dilation: int = 1  # pixels per shift step (the paper's ablation; official: 1)
    mlp_ratio: float = 4.0
    patch_size: int = 4
    as_bias: bool = True  # biases of the four 1x1 convs of the axial shift
    patch_norm: bool = True  # GroupNorm after the patch embedding
    drop_rate: float = 0.0  # dropout after the stem and inside the MLPs (official)
    drop_path_rate: float = 0.0  # official training: T 0.2, S 0.3, B 0.5
    crop_pct: float = 0.875  # Swin's test transform: resize to 256/224 of the crop

    def __post_init__(self) -> None:
        self._check_common()
        for name in ("embed_dim", "shift_size", "shift_dilation", "patch_size"):
            self._positive(name)
        self._per_stage("depths")
        if self.shift_size % 2 == 0:
            raise ConfigError(f"shift_size must be odd, got {self.shift_size}")
        self._positive_number("mlp_ratio")
        self._flags("as_bias", "patch_norm")
        check_grid(self.img_size, self.patch_size, ConfigError)
        self._check_size(param_count(self))

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))


def group_norm(dim: int) -> nn.GroupNorm:
    """One group: mean and variance over C·H·W of each image (the official ``MyNorm``)."""
    return nn.GroupNorm(1, dim)


def axial_shift(x: torch.Tensor, shift_size: int, dim: int, dilation: int = 1) -> torch.Tensor:
    """(B, C, H, W) -> same shape; channel group g moved by (shift_size//2 - g)·dilation.

    Output position i along ``dim`` (2: height, 3: width) reads input position i + s_g, or 0
    outside the map. Groups are ceil(C / shift_size) channels (the official kernel's).
    """
    pad = shift_size // 2 * dilation
    size = x.shape[dim]
    padded = nn.functional.pad(x, (pad, pad, 0, 0) if dim == 3 else (0, 0, pad, pad))
    group = math.ceil(x.shape[1] / shift_size)
    pieces = []
    for g, chunk in enumerate(padded.split(group, dim=1)):
        offset = (shift_size // 2 - g) * dilation
        pieces.append(chunk.narrow(dim, pad + offset, size))
    return torch.cat(pieces, dim=1)


class AxialShift(nn.Module):
    """The token mixer: two parallel axial shifts (width, height) between 1x1 convs."""

    def __init__(self, dim: int, shift_size: int, dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.shift_size, self.dilation = shift_size, dilation
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=bias)
        self.conv2_1 = nn.Conv2d(dim, dim, 1, bias=bias)  # after the shift along the width
        self.conv2_2 = nn.Conv2d(dim, dim, 1, bias=bias)  # after the shift along the height
        self.conv3 = nn.Conv2d(dim, dim, 1, bias=bias)
        self.actn = nn.GELU()
        self.norm1 = group_norm(dim)
        self.norm2 = group_norm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.actn(self.norm1(self.conv1(x)))
        along_w = self.actn(self.conv2_1(axial_shift(y, self.shift_size, 3, self.dilation)))
        along_h = self.actn(self.conv2_2(axial_shift(y, self.shift_size, 2, self.dilation)))
        return self.conv3(self.norm2(along_w + along_h))


class AxialShiftedBlock(nn.Module):
    """x + AxialShift(GN(x)), then x + Mlp(GN(x)); (B, C, H, W) in and out."""

    def __init__(self, config: AsMlpConfig, dim: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = group_norm(dim)
        self.axial_shift = AxialShift(dim, config.shift_size, config.shift_dilation, config.as_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = group_norm(dim)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), drop=config.drop_rate, layout="NCHW")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.axial_shift(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """(B, C, H, W) -> (B, 2C, H/2, W/2): 2x2 neighbours stacked on channels, GN, 1x1 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = group_norm(4 * dim)
        self.reduction = nn.Conv2d(4 * dim, 2 * dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (row, col) offsets (0,0), (1,0), (0,1), (1,1): the official channel order
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2],
                       x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=1)  # fmt: skip
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One level: its blocks, then (except the last level) the patch merging to the next.

    A container (the official ``BasicLayer``'s names): `AsMlp` runs the pieces, so that a
    level's output is taken before the merging."""

    def __init__(
        self, config: AsMlpConfig, level: int, drop_paths: list[float], merge: bool
    ) -> None:
        super().__init__()
        dim = config.widths[level]
        self.blocks = nn.ModuleList(AxialShiftedBlock(config, dim, p) for p in drop_paths)
        self.downsample = PatchMerging(dim) if merge else None


def patch_embed(config: AsMlpConfig) -> ConvNorm:
    """(B, in, H, W) -> (B, C, H/p, W/p): a p x p stride-p conv, then GN (``patch_norm``)."""
    p, dim = config.patch_size, config.embed_dim
    return ConvNorm(config.in_chans, dim, p, p, norm=group_norm(dim) if config.patch_norm else None)


class AsMlp(StagedNet):
    """AS-MLP from its config. ``forward_features`` gives (B, 8C, H/32, W/32), NCHW."""

    family = "asmlp"

    def __init__(self, config: AsMlpConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = patch_embed(config)
        self.pos_drop = nn.Dropout(config.drop_rate)
        rates = drop_path_rates(config.depths, config.drop_path_rate)
        last = len(config.depths) - 1
        self.layers = nn.ModuleList(
            BasicLayer(config, i, rates[i], merge=i < last) for i in range(last + 1)
        )
        self.norm = group_norm(config.widths[-1])
        self.head_drop = nn.Identity()  # the official head has no dropout
        self.head = linear_head(config.widths[-1], config.num_classes)
        self._describe_stages([f"layers.{i}" for i in range(last + 1)], config.widths,
                              [config.patch_size * 2**i for i in range(last + 1)])  # fmt: skip
        self.apply(official_init)

    def check_input(self, images: torch.Tensor) -> torch.Tensor:
        images = super().check_input(images)
        check_grid(images.shape[-2:], self.config.patch_size, InputShapeError)
        return images

    def _enter_level(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self.pos_drop(x) if i == 0 else self.layers[i - 1].downsample(x)

    def _level_blocks(self, i: int) -> nn.Module:
        return self.layers[i].blocks

    def _prune_after(self, level: int) -> None:
        self.layers = self.layers[: level + 1]
        self.layers[level].downsample = None

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """As `StagedNet.group_matcher` for Swin's layout: the downsampling after stage i's
        blocks keyed (i, 99999), so that it sorts after them (timm's groups for Swin)."""
        if coarse:
            return super().group_matcher(coarse=True)
        return {"stem": r"^patch_embed", "blocks": [
            (r"^layers\.(\d+)\.blocks\.(\d+)\.", None),
            (r"^layers\.(\d+)\.downsample\.", (99999,)),
            (r"^norm", (99999,)),
        ]}  # fmt: skip


def _conv1x1_params(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _block_params(config: AsMlpConfig, c: int) -> int:
    hidden = int(c * config.mlp_ratio)
    shift = 4 * _conv1x1_params(c, c, config.as_bias) + 2 * 2 * c  # four convs, two GNs
    mlp = _conv1x1_params(c, hidden) + _conv1x1_params(hidden, c)
    return 2 * c + shift + 2 * c + mlp  # norm1, axial shift, norm2, mlp


def param_count(config: AsMlpConfig, include_head: bool = True) -> int:
    """Number of parameters, without building the model."""
    p, c0 = config.patch_size, config.embed_dim
    total = config.in_chans * p * p * c0 + c0 + (2 * c0 if config.patch_norm else 0)
    for level, (c, depth) in enumerate(zip(config.widths, config.depths, strict=True)):
        total += depth * _block_params(config, c)
        if level < len(config.depths) - 1:
            total += 2 * 4 * c + _conv1x1_params(4 * c, 2 * c, bias=False)
    width = config.widths[-1]
    total += 2 * width
    if include_head and config.num_classes:
        total += width * config.num_classes + config.num_classes
    return total


def macs_per_image(config: AsMlpConfig, include_head: bool = True) -> int:
    """Multiply-accumulates of the convolutions and the head for one ``img_size`` image.

    Per block of C channels on N pixels: 4·N·C² (the four 1x1 convs of the axial shift) +
    2·r·N·C² (the MLP); per merging (N/4)·4C·2C; plus the stem and the head. Norms, GELUs,
    shifts and adds are left out (under 0.5% here).
    """
    p = config.patch_size
    h, w = config.img_size[0] // p, config.img_size[1] // p
    total = h * w * config.in_chans * p * p * config.embed_dim
    for level, (c, depth) in enumerate(zip(config.widths, config.depths, strict=True)):
        hidden = int(c * config.mlp_ratio)
        total += depth * h * w * (4 * c * c + 2 * c * hidden)
        if level < len(config.depths) - 1:
            h, w = h // 2, w // 2
            total += h * w * 4 * c * 2 * c
    if include_head:
        total += config.widths[-1] * config.num_classes
    return total


VARIANTS: dict[str, AsMlpConfig] = {
    "asmlp_tiny": AsMlpConfig(embed_dim=96, depths=(2, 2, 6, 2)),
    "asmlp_small": AsMlpConfig(embed_dim=96, depths=(2, 2, 18, 2)),
    "asmlp_base": AsMlpConfig(embed_dim=128, depths=(2, 2, 18, 2)),
}
"""The official ImageNet-1k 224 models (configs/as_{tiny,small,base}_patch4_shift5_224.yaml)."""


# --------------------------------------------------------------------------- the family spec


def config_from_state(state: Mapping[str, torch.Tensor], img_size: Any, fields: Any) -> AsMlpConfig:
    """The `AsMlpConfig` of an official-layout state dict: the stem gives in_chans, P, C; the
    ``layers.{i}.blocks.{j}`` keys the depths; fc1 the MLP ratio. The shift size is no shape:
    the registered variant's (5)."""
    stem = shape_of(state, "patch_embed.proj.weight", 4)
    levels = indexed(state, "layers.")
    architecture = {
        "in_chans": stem[1],
        "patch_size": stem[2],
        "embed_dim": stem[0],
        "depths": [indexed(state, f"layers.{i}.blocks.") for i in range(levels)],
        "mlp_ratio": float(width_ratio(state, "layers.0.blocks.0.mlp.fc1.weight", stem[0])),
        "as_bias": "layers.0.blocks.0.axial_shift.conv1.bias" in state,
        "patch_norm": "patch_embed.norm.weight" in state,
        "num_classes": head_classes(state),
    }
    return config_from_shapes(AsMlpConfig, VARIANTS, architecture, img_size, fields)


LAYER_KINDS = (
    ("patch_embed.*", "stem"),
    # the 1x1 convs on the shifted channel groups: the shift plus these mix positions
    ("layers.*.axial_shift.conv2_*", "token-mixing"),
    ("layers.*.axial_shift.conv*", "channel-mixing"),  # conv1 before the shift, conv3 after
    ("layers.*.mlp.*", "channel-mixing"),
    ("layers.*.downsample.*", "downsample"),  # patch merging
)

SPEC = register_family(
    FamilySpec(
        name="asmlp",
        config_class=AsMlpConfig,
        model=AsMlp,
        params=param_count,
        macs=macs_per_image,
        paper=Paper("AS-MLP", "2107.08391", "mit", "https://github.com/svip-lab/AS-MLP"),
        markers=("patch_embed.proj.weight", "layers.0.blocks.0.axial_shift.conv2_1.weight"),
        config_from_state=config_from_state,
        any_size=True,  # no layer depends on the image size (sides multiples of 32)
        variants=VARIANTS,
        description="axial shifts of channel groups between 1x1 convs, Swin-like pyramid",
        layer_kinds=LAYER_KINDS,
    )
)
