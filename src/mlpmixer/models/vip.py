"""Vision Permutator (ViP; Hou et al., 2021, arXiv 2106.12368; houqb/VisionPermutator, MIT).

Activations are channels-last, x (B, H, W, C), as in the official code. A network is a patch
stem (a P×P stride-P convolution), stages of Permutator blocks with a `Downsample` between
two stages where the grid halves (a 2×2 stride-2 convolution) or only the width changes
(1×1), a final LayerNorm, the mean over the grid and a linear head. A Permutator block is

    x = x + DropPath(PermuteMLP(LN(x))) / skip_lam
    x = x + DropPath(MLP(LN(x))) / skip_lam                 MLP: C -> r·C -> C, exact GELU

PermuteMLP splits the C channels into G segments of S = C/G channels, G = the grid side
(``segment_dims``; ViP requires H = W = G). The height branch takes, for each column w and
segment g, the H×S slab x[:, w, gS:(g+1)S] as one vector of length H·S = C and mixes it with
a C×C linear layer ``mlp_h``; the width branch does the same along the rows (``mlp_w``), the
channel branch is a plain C×C linear ``mlp_c``. The three are summed with per-channel weights
from a split-attention ``reweight`` MLP over their mean (C -> C/4 -> 3C, a softmax over the
three per channel) and projected by ``proj``.

Input size: fixed. The permutation only type-checks when the grid side equals the segment
count G of each stage, so a ViP takes exactly ``img_size = patch_size × segment_dims[0]``
(224 for every registered variant); another size needs other segment dims, i.e. other
weights. ``forward_features`` returns (B, H', W', C), the official layout.

Official state-dict keys are the module names here, e.g. ``patch_embed.proj.weight``,
``network.{i}.{j}.norm1.weight``, ``network.{i}.{j}.attn.mlp_c.weight`` (no bias),
``attn.mlp_h.weight``, ``attn.mlp_w.weight``, ``attn.reweight.fc{1,2}.{weight,bias}``,
``attn.proj.{weight,bias}``, ``norm2``, ``mlp.fc{1,2}``, ``network.{i}.proj.{weight,bias}``
(a Downsample), ``norm.{weight,bias}``, ``head.{weight,bias}``. Family marker: a key ending
in ``attn.mlp_h.weight`` (CycleMLP has ``attn.sfc_h.offset`` instead; both have ``mlp_c``).

Cost (`param_count`, `macs_per_image`, `paper_flops`): per block and grid cell 4C² (the three
branches and proj) + 2rC² (the MLP), plus C²/4 + 3C²/4 per image for the reweighting MLP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, InputShapeError
from .config import to_pair
from .layers import drop_path
from .spec import FamilySpec, Paper, register_family
from .staged import (
    ConvNorm,
    Mlp,
    StagedNet,
    ZooConfig,
    config_from_shapes,
    drop_path_rates,
    head_classes,
    indexed,
    linear_head,
    official_init,
    reweighted_sum,
    state_width,
    width_ratio,
)
from .state_shapes import shape_of


@dataclass(frozen=True)
class VipConfig(ZooConfig):
    """A Vision Permutator. Defaults are ViP-Small/7 at 224 (``vip_s7``).

    ``transitions[i]``: a 2×2 stride-2 Downsample after stage i (len = stages - 1); where it
    is False but the width changes, a 1×1 Downsample. ``segment_dims[i]`` must equal the
    grid side of stage i. The official ``drop_rate`` is accepted and unused there; here it
    is dropout before the head (timm's convention).
    """

    FAMILY = "vip"

    family: str = "vip"
    patch_size: int = 7
    depths: tuple[int, ...] = (4, 3, 8, 3)
    embed_dims: tuple[int, ...] = (192, 384, 384, 384)
    transitions: tuple[bool, ...] = (True, False, False)
    segment_dims: tuple[int, ...] = (32, 16, 16, 16)
    mlp_ratios: tuple[float, ...] = (3, 3, 3, 3)
    qkv_bias: bool = False  # bias of mlp_c / mlp_h / mlp_w (the official name)
    skip_lam: float = 1.0  # residual branches are divided by it
    norm_eps: float = 1e-5  # nn.LayerNorm's default, as in the official code
    crop_pct: float = 0.9

    def __post_init__(self) -> None:
        self._check_common()
        self._per_stage("depths")
        for name in ("embed_dims", "segment_dims"):
            self._per_stage(name)
        self._per_stage("mlp_ratios", check="number")
        self._positive("patch_size")
        stages = len(self.depths)
        flags = self.transitions
        if isinstance(flags, str | bytes) or not isinstance(flags, Sequence) or not all(
            isinstance(t, bool) for t in flags
        ) or len(flags) != stages - 1:  # fmt: skip
            raise ConfigError(
                f"transitions must be {stages - 1} booleans (between stages), got {flags!r}"
            )
        self._set("transitions", tuple(flags))
        self._flags("qkv_bias")
        self._positive_number("skip_lam")
        self._positive_number("norm_eps")
        self._check_grid()

    def _check_grid(self) -> None:
        """The permutation needs a square grid whose side is each stage's segment count."""
        h, w = self.img_size
        one_size = (
            f"img_size must be {self.patch_size * self.segment_dims[0]}, patch_size x "
            "segment_dims[0], with each transition halving the grid"
        )
        if h % self.patch_size or w % self.patch_size:
            raise ConfigError(
                f"ViP takes one input size: img_size {self.img_size} is not divisible by "
                f"patch_size {self.patch_size} ({one_size})"
            )
        for stage, side in enumerate(self.grid_sides):
            seg, dim = self.segment_dims[stage], self.embed_dims[stage]
            if side != (seg, seg):
                raise ConfigError(
                    f"ViP takes one input size: stage {stage} has a {side[0]}x{side[1]} grid "
                    f"but segment_dims[{stage}]={seg} ({one_size})"
                )
            if dim % seg:
                raise ConfigError(
                    f"embed_dims[{stage}]={dim} is not divisible by segment_dims[{stage}]={seg}"
                )
        self._check_size(param_count(self))

    @property
    def grid_sides(self) -> list[tuple[int, int]]:
        """(H', W') of each stage's grid."""
        h, w = self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size
        sides = []
        for stage in range(len(self.depths)):
            sides.append((h, w))
            if stage < len(self.transitions) and self.transitions[stage]:
                h, w = h // 2, w // 2
        return sides

    @property
    def reductions(self) -> list[int]:
        """Stride of each stage's grid w.r.t. the image (timm's ``reduction``)."""
        out, stride = [], self.patch_size
        for stage in range(len(self.depths)):
            out.append(stride)
            if stage < len(self.transitions) and self.transitions[stage]:
                stride *= 2
        return out

    def downsample_kernel(self, stage: int) -> int | None:
        """Kernel (= stride) of the Downsample after ``stage``; None if there is none."""
        if stage >= len(self.transitions):
            return None
        if self.transitions[stage]:
            return 2
        return 1 if self.embed_dims[stage] != self.embed_dims[stage + 1] else None


# --------------------------------------------------------------------------- analytic cost


def _linear_params(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def reweight_params(c: int) -> int:
    """The split-attention MLP C -> C/4 -> 3C."""
    return _linear_params(c, c // 4) + _linear_params(c // 4, 3 * c)


def mlp_params(c: int, ratio: float) -> int:
    hidden = int(c * ratio)
    return _linear_params(c, hidden) + _linear_params(hidden, c)


def _vip_block_params(config: VipConfig, stage: int) -> int:
    c = config.embed_dims[stage]
    branches = 3 * _linear_params(c, c, config.qkv_bias)  # mlp_c, mlp_h, mlp_w
    mixer = branches + reweight_params(c) + _linear_params(c, c)  # + proj
    return 2 * 2 * c + mixer + mlp_params(c, config.mlp_ratios[stage])  # 2 LayerNorms


def param_count(config: VipConfig, include_head: bool = True) -> int:
    """Number of parameters, without building the model."""
    dims, p = config.embed_dims, config.patch_size
    total = _linear_params(config.in_chans * p * p, dims[0])  # stem
    for stage, depth in enumerate(config.depths):
        total += depth * _vip_block_params(config, stage)
        k = config.downsample_kernel(stage)
        if k is not None:
            total += _linear_params(dims[stage] * k * k, dims[stage + 1])
    total += 2 * dims[-1]  # final LayerNorm
    return total + (_linear_params(dims[-1], config.num_classes) if include_head else 0)


def _vip_block_macs(config: VipConfig, stage: int) -> int:
    c, (h, w) = config.embed_dims[stage], config.grid_sides[stage]
    hidden = int(c * config.mlp_ratios[stage])
    per_cell = 4 * c * c + 2 * c * hidden  # mlp_c, mlp_h, mlp_w, proj; fc1, fc2
    return h * w * per_cell + c * (c // 4) + (c // 4) * 3 * c  # + reweight (per image)


def macs_per_image(config: VipConfig, include_head: bool = True) -> int:
    """Multiply-adds of every linear layer and convolution for one image (no bias adds,
    norms, activations, softmax or pooling)."""
    dims, p = config.embed_dims, config.patch_size
    (h, w), sides = config.grid_sides[0], config.grid_sides
    total = h * w * config.in_chans * p * p * dims[0]
    for stage, depth in enumerate(config.depths):
        total += depth * _vip_block_macs(config, stage)
        k = config.downsample_kernel(stage)
        if k is not None:
            nh, nw = sides[stage + 1]
            total += nh * nw * dims[stage] * k * k * dims[stage + 1]
    return total + (dims[-1] * config.num_classes if include_head else 0)


def layer_norm_elements(depths: Sequence[int], dims: Sequence[int], sides: Sequence) -> int:
    """Elements normalised by all LayerNorms (two per block, the final one) for one image."""
    total = sum(2 * d * c * h * w for d, c, (h, w) in zip(depths, dims, sides, strict=True))
    h, w = sides[-1]
    return total + dims[-1] * h * w


def paper_flops(config: VipConfig) -> int:
    """The FLOPs the tables print: fvcore's count, `macs_per_image` + 5 per LayerNorm element.

    fvcore's ``flop_count`` (what CycleMLP's main.py reports as "fvcore MAdds") counts one
    per multiply-add of linear/conv/matmul and 5 per element of a LayerNorm with affine; it
    counts nothing for GELU, softmax, means and element-wise sums.
    """
    norms = layer_norm_elements(config.depths, config.embed_dims, config.grid_sides)
    return macs_per_image(config) + 5 * norms


def _vip(depths, dims, patch, transitions, segments, crop_pct) -> VipConfig:
    return VipConfig(
        depths=depths, embed_dims=dims, patch_size=patch, transitions=transitions,
        segment_dims=segments, mlp_ratios=(3, 3, 3, 3), crop_pct=crop_pct,
    )  # fmt: skip


VARIANTS: dict[str, VipConfig] = {
    # the official vip_* functions; crop_pct from their default_cfgs (ViP_S, ViP_M, ViP_L)
    "vip_s14": _vip((4, 3, 8, 3), (384,) * 4, 14, (False,) * 3, (16,) * 4, 0.9),
    "vip_s7": _vip((4, 3, 8, 3), (192, 384, 384, 384), 7, (True, False, False), (32, 16, 16, 16), 0.9),
    "vip_m7": _vip((4, 3, 14, 3), (256, 256, 512, 512), 7, (False, True, False), (32, 32, 16, 16), 0.9),
    "vip_l7": _vip((8, 8, 16, 4), (256, 512, 512, 512), 7, (True, False, False), (32, 16, 16, 16), 0.875),
}  # fmt: skip


# --------------------------------------------------------------------------- layers


def mix_along_height(x: torch.Tensor, linear: nn.Linear, segments: int) -> torch.Tensor:
    """ViP's height permutation: (B, H, W, C) -> (B, H, W, C), H == ``segments``.

    Channels split into ``segments`` groups of S = C/segments; for each column and group the
    (H, S) slab is flattened (h·S + s) and mixed by the C×C ``linear``, then put back.
    """
    b, h, w, c = x.shape
    s = c // segments
    slabs = x.reshape(b, h, w, segments, s).permute(0, 3, 2, 1, 4).reshape(b, segments, w, h * s)
    mixed = linear(slabs).reshape(b, segments, w, h, s).permute(0, 3, 2, 1, 4)
    return mixed.reshape(b, h, w, c)


def mix_along_width(x: torch.Tensor, linear: nn.Linear, segments: int) -> torch.Tensor:
    """As `mix_along_height` along the rows: the (W, S) slab of each row and group, W == segments."""
    return mix_along_height(x.transpose(1, 2), linear, segments).transpose(1, 2)


class WeightedPermuteMLP(nn.Module):
    """ViP's token mixer: height, width and channel branches, reweighted, projected."""

    def __init__(self, dim: int, segments: int, qkv_bias: bool = False, drop: float = 0.0):
        super().__init__()
        self.segments = segments
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.mlp_h = nn.Linear(dim, dim, bias=qkv_bias)
        self.mlp_w = nn.Linear(dim, dim, bias=qkv_bias)
        self.reweight = Mlp(dim, dim // 4, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = mix_along_height(x, self.mlp_h, self.segments)
        w = mix_along_width(x, self.mlp_w, self.segments)
        mixed = reweighted_sum([h, w, self.mlp_c(x)], self.reweight, "NHWC")
        return self.proj_drop(self.proj(mixed))


class PermutatorBlock(nn.Module):
    """Pre-norm residual token mixer (``attn``) and channel MLP (``mlp``), over (B, H, W, C)."""

    def __init__(
        self, dim: int, mixer: nn.Module, mlp_ratio: float, drop_path_rate: float,
        skip_lam: float, norm_eps: float = 1e-5, drop: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = mixer
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path_rate = drop_path_rate
        self.skip_lam = skip_lam

    def _residual(self, branch: torch.Tensor) -> torch.Tensor:
        return drop_path(branch, self.drop_path_rate, self.training, True) / self.skip_lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._residual(self.attn(self.norm1(x)))
        return x + self._residual(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------- the network


class StagedMlpNet(StagedNet):
    """ViP's network, channels last (CycleMLP's too): a stem, stages of `PermutatorBlock`
    with a downsampling between some of them in ``network``, a LayerNorm, the head.

    A subclass implements `make_stem`, `make_mixer`, `make_downsample` (None: no
    downsampling after that stage) and `check_input`; the config has ``depths``,
    ``embed_dims``, ``mlp_ratios``, ``skip_lam``, ``norm_eps``, ``drop_rate``,
    ``drop_path_rate``, ``reductions``. ``stage_slots[i]`` is stage i's index in ``network``.
    """

    layout = "NHWC"

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = self.make_stem(config)
        network, slots = [], []
        for stage, rates in enumerate(drop_path_rates(config.depths, config.drop_path_rate)):
            slots.append(len(network))
            network.append(nn.Sequential(*[self._block(stage, rate) for rate in rates]))
            down = self.make_downsample(config, stage)
            if down is not None:
                network.append(down)
        self._network_stages(network, slots)
        self.norm = nn.LayerNorm(config.embed_dims[-1], eps=config.norm_eps)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = linear_head(config.embed_dims[-1], config.num_classes)
        self._describe_stages(
            [f"network.{slot}" for slot in slots], config.embed_dims, config.reductions
        )
        self.apply(self._init_weights)

    def _block(self, stage: int, drop_path_rate: float) -> PermutatorBlock:
        c = self.config
        return PermutatorBlock(
            c.embed_dims[stage], self.make_mixer(c, stage), c.mlp_ratios[stage],
            drop_path_rate, c.skip_lam, c.norm_eps,
        )  # fmt: skip

    def make_stem(self, config: Any) -> nn.Module:
        raise NotImplementedError

    def make_mixer(self, config: Any, stage: int) -> nn.Module:
        raise NotImplementedError

    def make_downsample(self, config: Any, stage: int) -> nn.Module | None:
        raise NotImplementedError

    def _init_weights(self, module: nn.Module) -> None:
        """The official init: linear weights N(0, 0.02) truncated at ±2, zero biases;
        LayerNorms and convolutions keep torch's default."""
        official_init(module)


class VisionPermutator(StagedMlpNet):
    """ViP: ``VisionPermutator(VipConfig(...))`` or ``VisionPermutator(VARIANTS['vip_s7'])``.

    ``forward(images)`` maps (B, in_chans, H, W), H × W = ``config.img_size`` exactly, to
    logits (B, num_classes), or to pooled features (B, C) when ``num_classes == 0``.
    """

    family = "vip"
    fixed_input_size = True

    def __init__(self, config: VipConfig | None = None) -> None:
        super().__init__(config if config is not None else VipConfig())

    def make_stem(self, config: VipConfig) -> nn.Module:
        p = config.patch_size
        return ConvNorm(config.in_chans, config.embed_dims[0], p, p)

    def make_mixer(self, config: VipConfig, stage: int) -> nn.Module:
        return WeightedPermuteMLP(
            config.embed_dims[stage], config.segment_dims[stage], config.qkv_bias
        )

    def make_downsample(self, config: VipConfig, stage: int) -> nn.Module | None:
        k = config.downsample_kernel(stage)
        if k is None:
            return None
        dims = config.embed_dims
        return ConvNorm(dims[stage], dims[stage + 1], k, k, channels_last=True)

    def check_input(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config
        expected = (c.in_chans, *c.img_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise InputShapeError(
                f"ViP takes images (B, {expected[0]}, {expected[1]}, {expected[2]}) only (its "
                f"permutation is tied to the grid size), got {tuple(images.shape)}"
            )
        return images


# --------------------------------------------------------------------------- the family spec


def config_from_state(state: Mapping[str, torch.Tensor], img_size: Any, fields: Any) -> VipConfig:
    """The `VipConfig` of an official-layout state dict: the stem gives in_chans, P, C0; each
    ``network.{i}`` is a stage (blocks) or a Downsample (``proj``, kernel 2: a transition);
    the segment dims follow from the image size (224 unless given), not from the shapes."""
    stem = shape_of(state, "patch_embed.proj.weight", 4)
    depths, dims, ratios, transitions = [], [], [], []
    for i in range(indexed(state, "network.")):
        if f"network.{i}.proj.weight" in state:  # a Downsample after the last stage
            transitions[-1] = shape_of(state, f"network.{i}.proj.weight", 4)[2] == 2
            continue
        depths.append(indexed(state, f"network.{i}."))
        dims.append(state_width(state, f"network.{i}.0.norm1.weight"))
        ratios.append(width_ratio(state, f"network.{i}.0.mlp.fc1.weight", dims[-1]))
        transitions.append(False)
    size = to_pair(img_size if img_size is not None else 224, "img_size")
    grid, segments = size[0] // stem[2], []
    for stage in range(len(depths)):
        segments.append(grid)
        grid = grid // 2 if transitions[stage] else grid
    architecture = {
        "in_chans": stem[1], "patch_size": stem[2], "depths": depths, "embed_dims": dims,
        "mlp_ratios": ratios, "transitions": transitions[:-1], "segment_dims": segments,
        "qkv_bias": "network.0.0.attn.mlp_c.bias" in state, "num_classes": head_classes(state),
    }  # fmt: skip
    return config_from_shapes(VipConfig, VARIANTS, architecture, size, fields)


LAYER_KINDS = (
    ("patch_embed.*", "stem"),
    ("network.*.attn.mlp_h", "token-mixing"),  # along the height (segments of channels)
    ("network.*.attn.mlp_w", "token-mixing"),  # along the width
    ("network.*.attn.mlp_c", "channel-mixing"),
    ("network.*.attn.reweight.*", "reweight"),
    ("network.*.attn.proj", "channel-mixing"),
    ("network.*.mlp.*", "channel-mixing"),
    ("network.*.proj", "downsample"),  # a Downsample between stages
)

SPEC = register_family(
    FamilySpec(
        name="vip",
        config_class=VipConfig,
        model=VisionPermutator,
        params=param_count,
        macs=macs_per_image,
        # The code is MIT; the official README restricts the released weights to
        # non-commercial research use, hence "other".
        paper=Paper(
            "Vision Permutator", "2106.12368", "other", "https://github.com/houqb/VisionPermutator"
        ),
        markers=("patch_embed.proj.weight", "network.0.0.attn.mlp_h.weight"),
        config_from_state=config_from_state,
        any_size=False,  # one input size per set of weights (the segment dims)
        variants=VARIANTS,
        description="height, width and channel permute-MLPs, reweighted (one input size)",
        layer_kinds=LAYER_KINDS,
    )
)
