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

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..choices import INTERPOLATIONS
from ..errors import ConfigError, InputShapeError
from .config import IMAGENET_MEAN, IMAGENET_STD, MAX_PARAMS, to_pair
from .layers import drop_path
from .params import no_weight_decay_names, weight_decay_groups
from .timm_api import take_indices

NCHW_NHWC = ("NCHW", "NHWC")


# --------------------------------------------------------------------------- config helpers
# Shared with models/cyclemlp.py, whose network is ViP's with another token mixer.


def check_positive_ints(values: Any, name: str, length: int | None = None) -> tuple[int, ...]:
    """A non-empty tuple of positive ints (of ``length`` if given), else a `ConfigError`."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"{name} must be a non-empty list of positive ints, got {values!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ConfigError(f"{name} must be a list of positive ints, got {values!r}")
    if length is not None and len(values) != length:
        raise ConfigError(f"{name} must have {length} entries (one per stage), got {values!r}")
    return tuple(values)


def check_common(config: Any) -> None:
    """The fields every zoo config has: sizes, dropout, preprocessing, class names."""
    set_field = object.__setattr__  # the configs are frozen
    set_field(config, "img_size", to_pair(config.img_size, "img_size"))
    for name in ("in_chans", "num_classes"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be an int >= 0, got {value!r}")
    if config.in_chans == 0:
        raise ConfigError("in_chans must be an int > 0, got 0")
    for name in ("drop_rate", "drop_path_rate"):
        value = getattr(config, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
            raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    if not isinstance(config.skip_lam, int | float) or not config.skip_lam > 0:
        raise ConfigError(f"skip_lam must be a positive number, got {config.skip_lam!r}")
    for name in ("mean", "std"):
        values = getattr(config, name)
        ok = isinstance(values, Sequence) and not isinstance(values, str | bytes)
        if (
            not ok
            or len(values) != config.in_chans
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in values
            )
        ):
            raise ConfigError(f"{name} must be {config.in_chans} finite numbers, got {values!r}")
        set_field(config, name, tuple(float(v) for v in values))
    if min(config.std) <= 0:
        raise ConfigError(f"std must be positive, got {config.std}")
    if config.interpolation not in INTERPOLATIONS:
        raise ConfigError(
            f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {config.interpolation!r}"
        )
    crop = config.crop_pct
    if not isinstance(crop, int | float) or isinstance(crop, bool) or not 0 < crop <= 1:
        raise ConfigError(f"crop_pct must be a number in (0, 1], got {crop!r}")
    names = config.class_names
    if names is not None:
        if isinstance(names, str | bytes) or not isinstance(names, Sequence):
            raise ConfigError(f"class_names must be a list of strings or null, got {names!r}")
        if len(names) != config.num_classes:
            raise ConfigError(
                f"class_names has {len(names)} names but num_classes is {config.num_classes}"
            )
        set_field(config, "class_names", tuple(str(c) for c in names))


def check_size(params: int) -> None:
    """Refuse absurd sizes (from a hostile or mistyped config.json) before anything is built."""
    if params > MAX_PARAMS:
        raise ConfigError(
            f"the config gives a model of {params:.3g} parameters, more than "
            f"the limit of {MAX_PARAMS:.0e}"
        )


def check_stage_lists(config: Any, names: Sequence[str]) -> int:
    """Per-stage tuples ``names`` of equal length; ``mlp_ratios`` may hold floats. Returns it."""
    object.__setattr__(config, "depths", check_positive_ints(config.depths, "depths"))
    stages = len(config.depths)
    for name in names:
        values = getattr(config, name)
        if name == "mlp_ratios":
            ok = isinstance(values, Sequence) and not isinstance(values, str | bytes)
            if (
                not ok
                or len(values) != stages
                or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values
                )
            ):
                raise ConfigError(f"mlp_ratios must be {stages} positive numbers, got {values!r}")
            values = tuple(values)
        else:
            values = check_positive_ints(values, name, stages)
        object.__setattr__(config, name, values)
    return stages


class ZooConfigMixin:
    """``replace``, ``to_dict``, ``from_dict`` of a frozen zoo config dataclass."""

    def replace(self, **changes: Any) -> Any:
        """A validated copy with some fields changed; unknown names are a `ConfigError`."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} field(s) {unknown}; known: {known}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Inverse of `to_dict`; unknown keys are a `ConfigError` that names them."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a {cls.__name__} must be a mapping, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; known: {known}")
        return cls(**data)


@dataclass(frozen=True)
class VipConfig(ZooConfigMixin):
    """A Vision Permutator. Defaults are ViP-Small/7 at 224 (``vip_s7``).

    ``transitions[i]``: a 2×2 stride-2 Downsample after stage i (len = stages - 1); where it
    is False but the width changes, a 1×1 Downsample. ``segment_dims[i]`` must equal the
    grid side of stage i. The official ``drop_rate`` is accepted and unused there; here it
    is dropout before the head (timm's convention).
    """

    family: str = "vip"
    img_size: tuple[int, int] = (224, 224)
    patch_size: int = 7
    in_chans: int = 3
    num_classes: int = 1000
    depths: tuple[int, ...] = (4, 3, 8, 3)
    embed_dims: tuple[int, ...] = (192, 384, 384, 384)
    transitions: tuple[bool, ...] = (True, False, False)
    segment_dims: tuple[int, ...] = (32, 16, 16, 16)
    mlp_ratios: tuple[float, ...] = (3, 3, 3, 3)
    qkv_bias: bool = False  # bias of mlp_c / mlp_h / mlp_w (the official name)
    skip_lam: float = 1.0  # residual branches are divided by it
    norm_eps: float = 1e-5  # nn.LayerNorm's default, as in the official code
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # rises linearly over all blocks from 0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.9
    class_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.family != "vip":
            raise ConfigError(f"family must be 'vip' for a VipConfig, got {self.family!r}")
        check_common(self)
        stages = check_stage_lists(self, ("embed_dims", "segment_dims", "mlp_ratios"))
        check_positive_ints([self.patch_size], "patch_size")
        flags = self.transitions
        if isinstance(flags, str | bytes) or not isinstance(flags, Sequence) or not all(
            isinstance(t, bool) for t in flags
        ) or len(flags) != stages - 1:  # fmt: skip
            raise ConfigError(
                f"transitions must be {stages - 1} booleans (between stages), got {flags!r}"
            )
        object.__setattr__(self, "transitions", tuple(flags))
        if not isinstance(self.qkv_bias, bool):
            raise ConfigError(f"qkv_bias must be a boolean, got {self.qkv_bias!r}")
        if not isinstance(self.norm_eps, int | float) or not self.norm_eps > 0:
            raise ConfigError(f"norm_eps must be a positive number, got {self.norm_eps!r}")
        self._check_grid()

    def _check_grid(self) -> None:
        """The permutation needs a square grid whose side is each stage's segment count."""
        h, w = self.img_size
        if h % self.patch_size or w % self.patch_size:
            raise ConfigError(
                f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}"
            )
        for stage, side in enumerate(self.grid_sides):
            seg, dim = self.segment_dims[stage], self.embed_dims[stage]
            if side != (seg, seg):
                raise ConfigError(
                    f"ViP takes one input size: stage {stage} has a {side[0]}x{side[1]} grid "
                    f"but segment_dims[{stage}]={seg} (img_size must be "
                    f"{self.patch_size * self.segment_dims[0]}, patch_size x segment_dims[0], "
                    f"with each transition halving the grid)"
                )
            if dim % seg:
                raise ConfigError(
                    f"embed_dims[{stage}]={dim} is not divisible by segment_dims[{stage}]={seg}"
                )
        check_size(param_count(self))

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


class Mlp(nn.Module):
    """fc1 -> GELU (exact) -> dropout -> fc2 -> dropout over the last axis: (..., C) -> (..., out)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def reweighted_sum(branches: Sequence[torch.Tensor], reweight: Mlp) -> torch.Tensor:
    """Σ_k a_k ⊙ branch_k with a = softmax over k of reweight(mean over the grid of Σ branches).

    branches: K tensors (B, H, W, C); reweight maps (B, C) -> (B, C·K), read as (B, C, K)
    (output unit c·K + k is channel c's logit for branch k, the official layout).
    """
    total = sum(branches)
    b, _, _, c = total.shape
    logits = reweight(total.mean(dim=(1, 2))).reshape(b, c, len(branches))
    weights = logits.softmax(dim=2)[:, None, None]  # (B, 1, 1, C, K)
    return sum(branch * weights[..., k] for k, branch in enumerate(branches))


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
        mixed = reweighted_sum([h, w, self.mlp_c(x)], self.reweight)
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


class PatchEmbed(nn.Module):
    """The stem: a convolution, (B, in, H, W) -> (B, C, H', W') (channels first, as its conv)."""

    def __init__(self, in_chans: int, dim: int, kernel: int, stride: int, padding: int = 0):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel, stride, padding)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images)


class Downsample(nn.Module):
    """Between stages: a convolution on the channels-last grid, (B, H, W, C) -> (B, H', W', C')."""

    def __init__(self, dim: int, out: int, kernel: int, stride: int, padding: int = 0):
        super().__init__()
        self.proj = nn.Conv2d(dim, out, kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


# --------------------------------------------------------------------------- the network


def drop_path_rates(depths: Sequence[int], rate: float) -> list[float]:
    """Stochastic depth per block, rising linearly from 0 to ``rate`` over all blocks."""
    n = sum(depths)
    return [rate * i / max(n - 1, 1) for i in range(n)]


class StagedMlpNet(nn.Module):
    """A stem, stages of blocks with Downsamples between them in ``network``, norm, head.

    A subclass sets ``family`` and implements `make_stem`, `make_mixer`, `make_downsample`
    and `check_input`; the config has ``depths``, ``embed_dims``, ``mlp_ratios``,
    ``skip_lam``, ``norm_eps``, ``drop_rate``, ``drop_path_rate``, ``reductions``.
    ``network`` holds the stages (``nn.Sequential`` of blocks) and the Downsamples in order,
    as the official code registers them; ``stage_slots[i]`` is stage i's index in it.
    """

    family: ClassVar[str] = ""
    fixed_input_size: ClassVar[bool] = False
    __jit_unused_properties__: ClassVar[list[str]] = [
        "pretrained_cfg", "default_cfg", "feature_info", "num_classes", "num_features",
        "blocks",
    ]  # fmt: skip

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = self.make_stem(config)
        rates = iter(drop_path_rates(config.depths, config.drop_path_rate))
        network, slots = [], []
        for stage, depth in enumerate(config.depths):
            slots.append(len(network))
            network.append(nn.Sequential(*[self._block(stage, next(rates)) for _ in range(depth)]))
            down = self.make_downsample(config, stage)
            if down is not None:
                network.append(down)
        self.network = nn.ModuleList(network)
        self.stage_slots = tuple(slots)
        self.grad_checkpointing = False
        self.norm = nn.LayerNorm(config.embed_dims[-1], eps=config.norm_eps)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = self._new_head(config.num_classes)
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

    def check_input(self, images: torch.Tensor) -> None:
        raise NotImplementedError

    def _init_weights(self, module: nn.Module) -> None:
        """The official init: linear weights N(0, 0.02) truncated at ±2, zero biases,
        LayerNorms one and zero; convolutions keep torch's default."""
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _new_head(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        return nn.Linear(self.config.embed_dims[-1], num_classes)

    # --- forward

    def forward_stem(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> (B, H', W', C0), after checking the input."""
        self.check_input(images)
        return self.patch_embed(images).permute(0, 2, 3, 1)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> normalised features (B, H', W', C), channels last (official)."""
        x = self.forward_stem(images)
        for module in self.network:
            x = self._run(module, x)
        return self.norm(x)

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """One stage or Downsample; a stage block by block under gradient checkpointing."""
        if not (self.grad_checkpointing and self.training and torch.is_grad_enabled()):
            return module(x)
        for block in module if isinstance(module, nn.Sequential) else [module]:
            x = checkpoint(block, x, use_reentrant=False)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, H', W', C) -> logits (B, classes), or the pooled (B, C) if ``pre_logits``."""
        x = self.head_drop(x.mean(dim=(1, 2)))
        return x if pre_logits else self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    # --- timm's API

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def num_features(self) -> int:
        return self.config.embed_dims[-1]

    head_hidden_size = num_features

    @property
    def blocks(self) -> list[nn.Module]:
        """The stages, the unit that `forward_intermediates` and features_only index (as
        timm's hierarchical models index stages). ``features.FeatureGetter`` reads it."""
        return [self.network[i] for i in self.stage_slots if i < len(self.network)]

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """One entry per stage (pyramid level): channels, stride, module name."""
        return [
            {"num_chs": dim, "reduction": r, "module": f"network.{slot}"}
            for dim, r, slot in zip(
                self.config.embed_dims, self.config.reductions, self.stage_slots, strict=True
            )
        ]

    def forward_intermediates(
        self,
        images: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs as timm returns them, and (unless ``intermediates_only``) the features.

        ``indices``: None all stages, n the last n, a sequence those (negative from the end).
        ``norm`` passes the last stage's output through the final norm (the other stages
        have other widths; timm does the same for hierarchical models). ``output_fmt``
        'NCHW' gives (B, C_i, H_i, W_i), 'NHWC' (B, H_i, W_i, C_i). ``stop_early`` runs no
        stage after the last one taken; the features returned are then that stage's output,
        not normalised. Returns ``(features (B, H', W', C), [intermediates])`` or the list.
        """
        if output_fmt not in NCHW_NHWC:
            raise ConfigError(f"output_fmt must be one of {NCHW_NHWC}, got {output_fmt!r}")
        stages = len(self.config.depths)
        taken = take_indices(stages, indices)
        last = max(taken) if stop_early else stages - 1
        x = self.forward_stem(images)
        intermediates = []
        for stage in range(last + 1):
            if stage > 0 and self.stage_slots[stage] - 1 != self.stage_slots[stage - 1]:
                x = self._run(self.network[self.stage_slots[stage] - 1], x)  # its Downsample
            x = self._run(self.network[self.stage_slots[stage]], x)
            if stage in taken:
                y = self.norm(x) if norm and stage == stages - 1 else x
                intermediates.append(y.permute(0, 3, 1, 2) if output_fmt == "NCHW" else y)
        if intermediates_only:
            return intermediates
        return (self.norm(x) if last == stages - 1 else x), intermediates

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (and the norm, the head), as timm."""
        taken = take_indices(len(self.config.depths), indices)
        self.network = self.network[: self.stage_slots[max(taken)] + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return taken

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(
        self, num_classes: int, global_pool: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        """A new zero-initialised head for ``num_classes`` (0: none, pooled features out).

        ``global_pool`` is accepted for timm's signature; only 'avg' (or None) exists here.
        """
        if global_pool not in (None, "avg", ""):
            raise ConfigError(f"global_pool must be 'avg', got {global_pool!r}")
        names = tuple(class_names) if class_names is not None else None
        self.config = self.config.replace(num_classes=num_classes, class_names=names)
        param = next(self.patch_embed.parameters())
        head = self._new_head(num_classes).to(device=param.device, dtype=param.dtype)
        if isinstance(head, nn.Linear):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.head = head.train(self.training)

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's preprocessing dict for these weights (from the config)."""
        c = self.config
        return {
            "num_classes": c.num_classes,
            "input_size": (c.in_chans, *c.img_size),
            "fixed_input_size": self.fixed_input_size,
            "mean": c.mean,
            "std": c.std,
            "interpolation": c.interpolation,
            "crop_pct": c.crop_pct,
            "pool_size": None,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        }

    default_cfg = pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward: less memory, more compute."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Parameters that recipes exclude from weight decay: norms and biases (ndim <= 1)."""
        return no_weight_decay_names(self)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups: matrices and kernels get ``weight_decay``, norms and biases none."""
        return weight_decay_groups(self, weight_decay)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups: the stem, then each stage (coarse) or block."""
        blocks = r"^network\.(\d+)" if coarse else r"^network\.(\d+)\.(\d+)"
        return {"stem": r"^patch_embed", "blocks": [(blocks, None), (r"^norm", (99999,))]}


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
        return PatchEmbed(config.in_chans, config.embed_dims[0], p, p)

    def make_mixer(self, config: VipConfig, stage: int) -> nn.Module:
        return WeightedPermuteMLP(
            config.embed_dims[stage], config.segment_dims[stage], config.qkv_bias
        )

    def make_downsample(self, config: VipConfig, stage: int) -> nn.Module | None:
        k = config.downsample_kernel(stage)
        if k is None:
            return None
        return Downsample(config.embed_dims[stage], config.embed_dims[stage + 1], k, k)

    def check_input(self, images: torch.Tensor) -> None:
        c = self.config
        expected = (c.in_chans, *c.img_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise InputShapeError(
                f"ViP takes images (B, {expected[0]}, {expected[1]}, {expected[2]}) only (its "
                f"permutation is tied to the grid size), got {tuple(images.shape)}"
            )
