"""CycleMLP (Chen et al., 2021, arXiv 2107.10224, ICLR 2022; ShoufaChen/CycleMLP, MIT).

ViP's network (models/vip.py: channels-last stages of blocks, reweighted three-branch token
mixer, channel MLP) with the height and width permutations replaced by Cycle FC layers, an
overlapping stem (7×7 convolution, stride 4, padding 2) and a 3×3 stride-2 convolution
between any two stages: a four-level pyramid at strides 4, 8, 16, 32.

Cycle FC. The official code runs torchvision's ``deform_conv2d`` with a 1×1 kernel, one
offset group per input channel and fixed integer offsets; ``CycleFC(C, C', (1, k))`` gives
input channel c the offset (dy, dx) = (0, (c + ⌊k/2⌋) mod k - ⌊k/2⌋), ``(k, 1)`` the same
along y. A deformable convolution samples input channel c at (y + dy_c, x + dx_c) by
bilinear interpolation, which at integer offsets is the value there, and 0 outside the map;
so Cycle FC is exactly a per-channel spatial shift with zero fill followed by a 1×1
convolution (a C×C' linear layer plus bias), which is how it is written here:

    CycleFC(x)[y, x', o] = b[o] + Σ_c W[o, c] · x[y + dy_c, x' + dx_c, c]   (0 off the map)

For k = 3 the channels cycle through the shifts 0, +1, -1, 0, +1, ... Note the official
names: ``sfc_h`` is the (1, 3) layer, which shifts along the *width*; ``sfc_w`` is (3, 1),
along the height.

Input size: any H, W >= 3 (the stem needs 3 pixels). Stage grids are
⌊(H - 3)/4⌋ + 1, then ⌊(g - 1)/2⌋ + 1 per Downsample: exactly H/4, H/8, H/16, H/32 when H
is a multiple of 32 (224 -> 56, 28, 14, 7). ``forward_features`` returns (B, H', W', C).

Official state-dict keys are the module names here, as ViP's plus, per block,
``attn.sfc_h.{weight, bias, offset}`` and ``attn.sfc_w.{...}`` (weight (C, C, 1, 1), offset
a persistent buffer (1, 2C, 1, 1) of the fixed offsets, checked when loaded), and no
``mlp_h`` / ``mlp_w``. Family marker: a key ending in ``attn.sfc_h.offset``. The official
detection/segmentation backbones (``fork_feat``) add ``norm0``, ``norm2``, ``norm4``,
``norm6`` and drop ``norm`` / ``head``; those are not this classification model.

Cost: per block and grid cell 4C² (mlp_c, the two Cycle FCs, proj) + 2rC² (the MLP), plus
the reweighting MLP per image; `paper_flops` is fvcore's count, which CycleMLP's main.py
prints (its ``sfc_flop_jit`` counts a Cycle FC as the 1×1 convolution: C·C' per cell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputShapeError
from .spec import FamilySpec, Paper, register_family
from .staged import (
    DOWN_KERNEL,
    DOWN_PAD,
    DOWN_STRIDE,
    STEM_KERNEL,
    STEM_PAD,
    STEM_STRIDE,
    ConvNorm,
    Mlp,
    ZooConfig,
    config_from_shapes,
    head_classes,
    level_sizes,
    official_init,
    pyramid_levels,
    reweighted_sum,
)
from .state_shapes import shape_of
from .vip import StagedMlpNet, layer_norm_elements, mlp_params, reweight_params

CYCLE_SIZE = 3  # the pseudo-kernel (1, 3) / (3, 1) of the official blocks
STEM = (STEM_KERNEL, STEM_STRIDE, STEM_PAD)  # the overlapping patch embedding
DOWN = (DOWN_KERNEL, DOWN_STRIDE, DOWN_PAD)  # the Downsample between stages


@dataclass(frozen=True)
class CycleMlpConfig(ZooConfig):
    """A CycleMLP. Defaults are CycleMLP-B1 at 224 (``cyclemlp_b1``).

    ``crop_pct`` 0.875: the official evaluation (its main.py in evaluation mode, datasets.py) resizes to
    256/224 of the input size and centre-crops, bicubic. ``drop_rate`` is accepted and unused
    by the official code; here it is dropout before the head (timm's convention).
    """

    FAMILY = "cyclemlp"

    family: str = "cyclemlp"
    depths: tuple[int, ...] = (2, 2, 4, 2)
    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    mlp_ratios: tuple[float, ...] = (4, 4, 4, 4)
    qkv_bias: bool = False  # bias of mlp_c (the official name)
    skip_lam: float = 1.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        self._check_common()
        self._per_stage("depths")
        self._per_stage("embed_dims")
        self._per_stage("mlp_ratios", check="number")
        self._flags("qkv_bias")
        self._positive_number("skip_lam")
        self._positive_number("norm_eps")
        if min(self.img_size) < STEM[0] - 2 * STEM[2]:
            raise ConfigError(f"img_size {self.img_size}: CycleMLP needs at least 3x3 pixels")
        self._check_size(param_count(self))

    @property
    def grid_sides(self) -> list[tuple[int, int]]:
        """(H', W') of each stage's grid at ``img_size``."""
        return level_sizes(self.img_size, len(self.depths))

    @property
    def reductions(self) -> list[int]:
        """Nominal stride of each stage (timm's ``reduction``): 4, 8, 16, 32."""
        return [STEM[1] * DOWN[1] ** i for i in range(len(self.depths))]


# --------------------------------------------------------------------------- analytic cost


def param_count(config: CycleMlpConfig, include_head: bool = True) -> int:
    """Number of parameters, without building the model (the offsets are buffers)."""
    dims = config.embed_dims
    k, _, _ = STEM
    total = config.in_chans * k * k * dims[0] + dims[0]
    for stage, depth in enumerate(config.depths):
        c = dims[stage]
        mlp_c = c * c + (c if config.qkv_bias else 0)
        cycle_fcs = 2 * (c * c + c)
        mixer = mlp_c + cycle_fcs + reweight_params(c) + c * c + c  # + proj
        total += depth * (2 * 2 * c + mixer + mlp_params(c, config.mlp_ratios[stage]))
        if stage < len(dims) - 1:
            total += DOWN[0] * DOWN[0] * c * dims[stage + 1] + dims[stage + 1]
    total += 2 * dims[-1]
    return total + (dims[-1] * config.num_classes + config.num_classes if include_head else 0)


def macs_per_image(config: CycleMlpConfig, include_head: bool = True) -> int:
    """Multiply-adds of every linear layer, Cycle FC and convolution for one image at
    ``img_size`` (no bias adds, norms, activations, softmax or pooling)."""
    dims, sides = config.embed_dims, config.grid_sides
    (h, w), k = sides[0], STEM[0]
    total = h * w * config.in_chans * k * k * dims[0]
    for stage, depth in enumerate(config.depths):
        c, (h, w) = dims[stage], sides[stage]
        hidden = int(c * config.mlp_ratios[stage])
        per_image = c * (c // 4) + (c // 4) * 3 * c  # reweight
        total += depth * (h * w * (4 * c * c + 2 * c * hidden) + per_image)
        if stage < len(dims) - 1:
            nh, nw = sides[stage + 1]
            total += nh * nw * DOWN[0] * DOWN[0] * c * dims[stage + 1]
    return total + (dims[-1] * config.num_classes if include_head else 0)


def paper_flops(config: CycleMlpConfig) -> int:
    """The FLOPs the paper prints: fvcore's count (what its main.py prints when asked for FLOPs), `macs_per_image` + 5
    per LayerNorm element (see `vip.paper_flops`)."""
    norms = layer_norm_elements(config.depths, config.embed_dims, config.grid_sides)
    return macs_per_image(config) + 5 * norms


def _b(depths, ratios, dims=(64, 128, 320, 512)) -> CycleMlpConfig:
    return CycleMlpConfig(depths=depths, mlp_ratios=ratios, embed_dims=dims)


VARIANTS: dict[str, CycleMlpConfig] = {
    # the official CycleMLP_B1 ... CycleMLP_B5 functions (cycle_mlp.py)
    "cyclemlp_b1": _b((2, 2, 4, 2), (4, 4, 4, 4)),
    "cyclemlp_b2": _b((2, 3, 10, 3), (4, 4, 4, 4)),
    "cyclemlp_b3": _b((3, 4, 18, 3), (8, 8, 4, 4)),
    "cyclemlp_b4": _b((3, 8, 27, 3), (8, 8, 4, 4)),
    "cyclemlp_b5": _b((3, 4, 24, 3), (4, 4, 4, 4), (96, 192, 384, 768)),
}


# --------------------------------------------------------------------------- Cycle FC


def cycle_offsets(channels: int, kernel_size: tuple[int, int]) -> torch.Tensor:
    """The official fixed offsets, (1, 2·channels, 1, 1): (dy, dx) of channel c at 2c, 2c+1."""
    kh, kw = kernel_size
    if kh != 1 and kw != 1:
        raise ConfigError(f"a Cycle FC kernel is 1 x k or k x 1, got {kernel_size}")
    k = max(kh, kw)
    shift = [(c + (kh * kw) // 2) % k - k // 2 for c in range(channels)]
    zero = [0] * channels
    dy, dx = (shift, zero) if kh > 1 else (zero, shift)
    pairs = [v for c in range(channels) for v in (dy[c], dx[c])]
    return torch.tensor(pairs, dtype=torch.float32).reshape(1, 2 * channels, 1, 1)


def shift_channels(x: torch.Tensor, shifts: torch.Tensor, axis: int, reach: int) -> torch.Tensor:
    """out[..., p, ..., c] = x[..., p + shifts[c], ..., c] along ``axis`` (1: H, 2: W) of a
    channels-last (B, H, W, C) map, 0 where that falls off the map; |shifts| <= ``reach``."""
    pad = [0, 0, reach, reach] if axis == 2 else [0, 0, 0, 0, reach, reach]
    padded = F.pad(x, pad)
    n = x.shape[axis]
    index = torch.arange(n, device=x.device)[:, None] + reach + shifts[None, :]  # (n, C)
    index = index[:, None] if axis == 1 else index[None]  # (n, 1, C) or (1, n, C)
    return torch.gather(padded, axis, index[None].expand(*x.shape))


def _fixed_offsets(
    loaded: torch.Tensor | None, channels: int, kernel_size: tuple[int, int]
) -> bool:
    """Whether a loaded ``offset`` buffer holds the fixed offsets (absent, wrongly shaped or
    on the meta device: not judged here, load_state_dict reports those itself)."""
    expected = cycle_offsets(channels, kernel_size)
    if loaded is None or loaded.shape != expected.shape or loaded.device.type == "meta":
        return True
    return torch.equal(loaded.detach().cpu().float(), expected)


class CycleFC(nn.Module):
    """A Cycle FC over a channels-last map: (B, H, W, C) -> (B, H, W, C').

    ``kernel_size`` (1, k) shifts along the width, (k, 1) along the height; parameters and the
    ``offset`` buffer as the official module registers them (weight (C', C, 1, 1), bias (C',)).
    """

    def __init__(self, dim: int, out: int, kernel_size: tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(out, dim, 1, 1))
        self.bias = nn.Parameter(torch.empty(out))
        self.register_buffer("offset", cycle_offsets(dim, kernel_size))
        self.axis = 1 if kernel_size[0] > 1 else 2
        self.reach = max(kernel_size) // 2
        along = self.offset[0, self.axis - 1 :: 2, 0, 0]  # dy (axis 1) or dx (axis 2)
        self.register_buffer("shifts", along.to(torch.long), persistent=False)
        nn.init.trunc_normal_(self.weight, std=0.02)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = shift_channels(x, self.shifts, self.axis, self.reach)
        return F.linear(shifted, self.weight.flatten(1), self.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args: Any) -> None:
        """Refuse offsets other than the fixed ones: the shifts are not read from the buffer."""
        key = f"{prefix}offset"
        loaded = state_dict.get(key)
        super()._load_from_state_dict(state_dict, prefix, *args)
        if not _fixed_offsets(loaded, self.weight.shape[1], self.kernel_size):
            args[-1].append(  # error_msgs: load_state_dict raises with them, strict or not
                f"{key}: the checkpoint's offsets are not CycleMLP's fixed {self.kernel_size} "
                f"cycle offsets; this model supports only those"
            )

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, kernel_size={self.kernel_size}"


class CycleMLP(nn.Module):
    """CycleMLP's token mixer: two Cycle FCs and a channel FC, reweighted, projected."""

    def __init__(self, dim: int, qkv_bias: bool = False, drop: float = 0.0) -> None:
        super().__init__()
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.sfc_h = CycleFC(dim, dim, (1, CYCLE_SIZE))
        self.sfc_w = CycleFC(dim, dim, (CYCLE_SIZE, 1))
        self.reweight = Mlp(dim, dim // 4, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.sfc_h(x), self.sfc_w(x), self.mlp_c(x)]
        mixed = reweighted_sum(branches, self.reweight, "NHWC")
        return self.proj_drop(self.proj(mixed))


class CycleNet(StagedMlpNet):
    """CycleMLP: ``CycleNet(CycleMlpConfig(...))`` or ``CycleNet(VARIANTS['cyclemlp_b2'])``.

    ``forward(images)`` maps (B, in_chans, H, W), any H, W >= 3, to logits (B, num_classes),
    or to pooled features (B, C) when ``num_classes == 0``.
    """

    family = "cyclemlp"
    fixed_input_size = False

    def __init__(self, config: CycleMlpConfig | None = None) -> None:
        super().__init__(config if config is not None else CycleMlpConfig())

    def make_stem(self, config: CycleMlpConfig) -> nn.Module:
        return ConvNorm(config.in_chans, config.embed_dims[0], *STEM)

    def make_mixer(self, config: CycleMlpConfig, stage: int) -> nn.Module:
        return CycleMLP(config.embed_dims[stage], config.qkv_bias)

    def make_downsample(self, config: CycleMlpConfig, stage: int) -> nn.Module | None:
        if stage == len(config.depths) - 1:
            return None
        dims = config.embed_dims
        return ConvNorm(dims[stage], dims[stage + 1], *DOWN, channels_last=True)

    def _init_weights(self, module: nn.Module) -> None:
        official_init(module, (nn.Linear, CycleFC))  # the official init: CycleFC as a linear

    def check_input(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config.in_chans
        if images.ndim != 4 or images.shape[1] != c or min(images.shape[2:]) < 3:
            raise InputShapeError(
                f"CycleMLP takes images (B, {c}, H, W) with H, W >= 3, got {tuple(images.shape)}"
            )
        return images


# --------------------------------------------------------------------------- the family spec


def config_from_state(
    state: Mapping[str, torch.Tensor], img_size: Any, fields: Any
) -> CycleMlpConfig:
    """The `CycleMlpConfig` of an official-layout state dict: stages at ``network.{2i}``
    (Downsamples between), widths from the norms, MLP ratios from fc1."""
    stem = shape_of(state, "patch_embed.proj.weight", 4)
    architecture = {
        "in_chans": stem[1],
        **pyramid_levels(state),
        "qkv_bias": "network.0.0.attn.mlp_c.bias" in state,
        "num_classes": head_classes(state),
    }
    return config_from_shapes(CycleMlpConfig, VARIANTS, architecture, img_size, fields)


LAYER_KINDS = (
    ("patch_embed.*", "stem"),
    # sfc_h/sfc_w (the cycle FCs, the token mixing) are `CycleFC`s, deformable
    # convolutions, not nn.Linear/nn.Conv2d: no quantizer takes them; named all the same
    ("network.*.attn.sfc_*", "token-mixing"),
    ("network.*.attn.mlp_c", "channel-mixing"),
    ("network.*.attn.reweight.*", "reweight"),
    ("network.*.attn.proj", "channel-mixing"),
    ("network.*.mlp.*", "channel-mixing"),
    ("network.*.proj", "downsample"),  # the 3x3 stride-2 conv between stages
)

SPEC = register_family(
    FamilySpec(
        name="cyclemlp",
        config_class=CycleMlpConfig,
        model=CycleNet,
        params=param_count,
        macs=macs_per_image,
        paper=Paper("CycleMLP", "2107.10224", "mit", "https://github.com/ShoufaChen/CycleMLP"),
        markers=("patch_embed.proj.weight", "network.0.0.attn.sfc_h.offset"),
        config_from_state=config_from_state,
        any_size=True,  # no layer depends on the image size
        variants=VARIANTS,
        description="Cycle FC (channel-cycled spatial shifts) pyramid, any input size",
        layer_kinds=LAYER_KINDS,
    )
)
