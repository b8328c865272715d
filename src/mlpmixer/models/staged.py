"""What every zoo family (ViP, CycleMLP, AS-MLP, Wave-MLP, Hire-MLP) shares: config plumbing,
a few layers and timm's model API over a network of stages.

A zoo model is a stem, stages (pyramid levels) of blocks with a downsampling step between some
of them, a final norm and a linear head on the average-pooled map. The one thing that differs
between the families here is the activation layout, a class attribute of the model:
``layout = "NHWC"`` (channels last: ViP, CycleMLP, as their official code) or ``"NCHW"``
(AS-MLP, Wave-MLP, Hire-MLP). The stem always takes NCHW images; `StagedNet.forward_stem`
moves them to the family's layout, and the layers below take ``layout`` where it matters
(`Mlp`, `reweighted_sum`, `ConvNorm`).

A family model sets, in its ``__init__``: ``config``, ``patch_embed`` (the stem), the stages,
``norm``, ``head_drop``, ``head`` and calls `StagedNet._describe_stages`. By default the stages
live in ``self.network`` (an ``nn.ModuleList`` holding each stage's blocks and the
downsamplings between them, as the official codes of ViP, CycleMLP, Wave-MLP and Hire-MLP
register them), stage i at ``stage_slots[i]``; a family laid out otherwise (AS-MLP) overrides
`_enter_level`, `_level_blocks` and `_prune_after`.

The config side: `ZooConfig` gives every zoo config the common fields and their checks (MixerConfig's
names: img_size, in_chans, num_classes, drop rates, mean/std, interpolation, crop_pct,
class_names), per-stage list checks, ``to_dict`` / ``from_dict`` / ``replace``, with errors that
name the key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..choices import INTERPOLATIONS
from ..errors import CheckpointError, ConfigError, InputShapeError
from .config import IMAGENET_MEAN, IMAGENET_STD, MAX_BLOCKS, MAX_PARAMS, to_pair
from .io import ModelIO
from .layers import drop_path
from .params import no_weight_decay_names, weight_decay_groups
from .spec import family_spec
from .state_fit import model_from_state
from .state_shapes import shape_of
from .timm_api import take_indices

LAYOUTS = ("NCHW", "NHWC")
# The overlapping stem of CycleMLP, Wave-MLP and Hire-MLP: a 7x7 conv, stride 4, padding 2,
# then 3x3 stride-2 convs with padding 1 between levels
STEM_KERNEL, STEM_STRIDE, STEM_PAD = 7, 4, 2
DOWN_KERNEL, DOWN_STRIDE, DOWN_PAD = 3, 2, 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- the config


@dataclass(frozen=True)
class ZooConfig:
    """The fields every zoo config has (MixerConfig's names and defaults), their checks and
    the JSON round trip.

    A family's config is a frozen dataclass subclassing it: it sets ``FAMILY``, redeclares
    ``family`` (and ``crop_pct`` etc. where its defaults differ; a redeclared field keeps its
    place) and adds its architecture fields, ``depths`` among them; its ``__post_init__``
    calls `_check_common`, then its own checks, then `_check_size`.
    """

    FAMILY: ClassVar[str] = ""  # the family name this config class accepts
    STAGES: ClassVar[int | None] = None  # the number of stages, where the family fixes it

    family: str = ""
    img_size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    num_classes: int = 1000
    drop_rate: float = 0.0  # dropout before the head (timm's convention) unless said otherwise
    drop_path_rate: float = 0.0  # rises linearly over all blocks from 0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    class_names: tuple[str, ...] | None = None  # names of the classes, in head order

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # the configs are frozen

    def _check_common(self) -> None:
        if self.family != self.FAMILY:
            raise ConfigError(f"family must be {self.FAMILY!r} for {type(self).__name__}, "
                              f"got {self.family!r}")  # fmt: skip
        self._set("img_size", to_pair(self.img_size, "img_size"))
        self._positive("in_chans")
        self._positive("num_classes", allow_zero=True)
        for name in ("drop_rate", "drop_path_rate"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                raise ConfigError(f"{name} must be a list of numbers, got {values!r}")
            values = tuple(values)
            if len(values) != self.in_chans or not all(_is_number(v) for v in values):
                raise ConfigError(f"{name} must be {self.in_chans} numbers, got {values!r}")
            self._set(name, tuple(float(v) for v in values))
        if min(self.std) <= 0:
            raise ConfigError(f"std must be positive, got {self.std!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                              f"got {self.interpolation!r}")  # fmt: skip
        if not _is_number(self.crop_pct) or not 0.0 < self.crop_pct <= 1.0:
            raise ConfigError(f"crop_pct must be a number in (0, 1], got {self.crop_pct!r}")
        self._check_class_names()

    def _check_class_names(self) -> None:
        names = self.class_names
        if names is None:
            return
        if (
            isinstance(names, str | bytes)
            or not isinstance(names, Sequence)
            or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in names)
        ):
            raise ConfigError(f"class_names must be a list of strings or null, got {names!r}")
        if len(names) != self.num_classes:
            raise ConfigError(f"class_names has {len(names)} names but num_classes is "
                              f"{self.num_classes}")  # fmt: skip
        self._set("class_names", tuple(str(c) for c in names))

    def _check_size(self, params: int) -> None:
        """Refuse absurd sizes (from a hostile or mistyped config.json) before anything is built."""
        blocks = sum(self.depths)
        if blocks > MAX_BLOCKS:
            raise ConfigError(f"depths {self.depths} make {blocks} blocks, more than the limit "
                              f"of {MAX_BLOCKS}")  # fmt: skip
        if params > MAX_PARAMS:
            raise ConfigError(f"the config gives a model of {params:.3g} parameters, more than "
                              f"the limit of {MAX_PARAMS:.0e}")  # fmt: skip

    def _positive(self, name: str, allow_zero: bool = False) -> None:
        value = getattr(self, name)
        if not _is_int(value) or value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"{name} must be an int {bound}, got {value!r}")

    def _positive_number(self, name: str) -> None:
        value = getattr(self, name)
        if not _is_number(value) or value <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}")

    def _flags(self, *names: str) -> None:
        for name in names:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def _per_stage(self, name: str, check: str = "int") -> None:
        """A per-stage field: positive ints (or numbers, ``check="number"``), as a tuple, one
        per stage: ``STAGES`` of them where the family fixes the count, else as many as
        ``depths`` has (which may have any number)."""
        stages = self.STAGES
        if stages is None and name != "depths":
            stages = len(self.depths)
        values = getattr(self, name)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            count = stages or "per-stage"
            raise ConfigError(f"{name} must be a list of {count} values, got {values!r}")
        values = tuple(values)
        ok = _is_int if check == "int" else _is_number
        if not values or (stages is not None and len(values) != stages) or not all(
            ok(v) and v > 0 for v in values
        ):  # fmt: skip
            kind = "ints" if check == "int" else "numbers"
            raise ConfigError(f"{name} must be {stages or 'some'} positive {kind} (one per "
                              f"stage), got {values!r}")  # fmt: skip
        self._set(name, values)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def untold_fields(cls) -> tuple[str, ...]:
        """The fields a tensors-only file keeps in its sidecar: all but ``family``. Shapes
        leave the image size, drop rates, eval settings and some choices (AS-MLP's shift) open;
        the others are kept too, as the shapes give them, so that the round trip is exact."""
        return tuple(name for name in cls.field_names() if name != "family")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Inverse of `to_dict`; unknown keys are a `ConfigError` that names them."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a {cls.__name__} must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; "
                              f"known: {cls.field_names()}")  # fmt: skip
        return cls(**data)

    def replace(self, **changes: Any) -> Any:
        """A validated copy with some fields changed; unknown names are a `ConfigError`."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} field(s) {unknown}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def drop_path_rates(depths: Sequence[int], rate: float) -> list[list[float]]:
    """Stochastic-depth rate per block of each stage, rising linearly from 0 to ``rate`` over
    all blocks (the official codes' ``torch.linspace(0, rate, sum(depths))``, cut per stage)."""
    total = sum(depths)
    flat = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [flat[s : s + d] for s, d in zip(starts, depths, strict=True)]


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """The output length of a convolution along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def level_sizes(img_size: tuple[int, int], stages: int = 4) -> list[tuple[int, int]]:
    """(h, w) of each stage behind the overlapping stem: (H-3)//4 + 1, then ceil of halves."""
    h, w = (conv_out(s, STEM_KERNEL, STEM_STRIDE, STEM_PAD) for s in img_size)
    sizes = [(h, w)]
    for _ in range(stages - 1):
        h, w = (conv_out(s, DOWN_KERNEL, DOWN_STRIDE, DOWN_PAD) for s in (h, w))
        sizes.append((h, w))
    return sizes


# --------------------------------------------------------------------------- layers


class DropPath(nn.Module):
    """Stochastic depth of a residual branch (timm's: kept branches scaled by 1/(1-p))."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, scale=True)


class Mlp(nn.Module):
    """fc1 -> GELU (exact) -> dropout -> fc2 -> dropout over the channels, in ``layout``.

    NHWC: Linear layers, (..., C) -> (..., out); NCHW: 1x1 convs, (B, C, H, W) -> (B, out, H,
    W) (the same map, the official codes' spelling for each layout, so the weights load).
    """

    def __init__(
        self, dim: int, hidden: int, out: int | None = None, drop: float = 0.0,
        layout: str = "NHWC",
    ) -> None:  # fmt: skip
        super().__init__()
        layer = nn.Linear if layout == "NHWC" else _conv1x1
        self.fc1 = layer(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = layer(hidden, out or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def _conv1x1(n_in: int, n_out: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 1)


def reweighted_sum(
    branches: Sequence[torch.Tensor], reweight: nn.Module, layout: str
) -> torch.Tensor:
    """Σ_k a_k ⊙ branch_k, a = softmax over k of reweight(mean over the map of Σ branches).

    branches: K maps in ``layout`` ((B, H, W, C) or (B, C, H, W)); ``reweight`` maps the
    pooled (B, C) (NHWC) or (B, C, 1, 1) (NCHW) to C·K values, read as (B, C, K): output
    unit c·K + k is channel c's logit for branch k (the official layout).
    """
    total = sum(branches)
    last = layout == "NHWC"
    b, c = total.shape[0], total.shape[3 if last else 1]
    pooled = total.mean(dim=(1, 2)) if last else total.mean(dim=(2, 3), keepdim=True)
    weights = reweight(pooled).reshape(b, c, len(branches)).softmax(dim=2)
    weights = weights[:, None, None] if last else weights[:, :, None, None]
    return sum(branch * weights[..., k] for k, branch in enumerate(branches))


class ConvNorm(nn.Module):
    """A strided convolution, then a norm and an activation (each optional): the stems and
    the downsamplings between stages, ``proj`` / ``norm`` / ``act`` as the official codes
    name them. ``channels_last``: takes and gives (B, H, W, C) (ViP's Downsample)."""

    def __init__(
        self, n_in: int, n_out: int, kernel: int, stride: int, pad: int = 0,
        norm: nn.Module | None = None, act: nn.Module | None = None,
        channels_last: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.proj = nn.Conv2d(n_in, n_out, kernel, stride=stride, padding=pad)
        self.norm = norm if norm is not None else nn.Identity()
        self.act = act if act is not None else nn.Identity()
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return self.act(self.norm(self.proj(x.permute(0, 3, 1, 2)))).permute(0, 2, 3, 1)
        return self.act(self.norm(self.proj(x)))


def linear_head(width: int, num_classes: int) -> nn.Module:
    """Linear(width, classes), or Identity for 0 classes (`forward` then gives features)."""
    return nn.Linear(width, num_classes) if num_classes else nn.Identity()


def new_head(width: int, num_classes: int) -> nn.Module:
    """Zero-initialised Linear(width, classes), or Identity for 0 classes."""
    head = linear_head(width, num_classes)
    if isinstance(head, nn.Linear):
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    return head


def official_init(module: nn.Module, kinds: tuple[type, ...] = (nn.Linear,)) -> None:
    """The official codes' init: weights of ``kinds`` N(0, 0.02) truncated at ±2, zero biases
    (the rest keeps torch's default). Use as ``model.apply(official_init)``."""
    if isinstance(module, kinds):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------- the network


class StagedNet(nn.Module, ModelIO):
    """timm's model API over a stem, stages, a final norm and a linear head (see the module
    docstring for what a family provides), and the project's save / load (`ModelIO`)."""

    family: ClassVar[str] = ""  # the name of the family's `FamilySpec`
    layout: ClassVar[str] = "NCHW"  # of the stages and of `forward_features`
    fixed_input_size: ClassVar[bool] = False
    __jit_unused_properties__: ClassVar[list[str]] = [
        "pretrained_cfg", "default_cfg", "feature_info", "num_classes", "num_features",
        "blocks",
    ]  # fmt: skip

    config: Any
    patch_embed: nn.Module
    norm: nn.Module
    head: nn.Module
    head_drop: nn.Module
    grad_checkpointing = False

    def _describe_stages(
        self, modules: Sequence[str], widths: Sequence[int], reductions: Sequence[int]
    ) -> None:
        """Each stage's module name, channels and stride w.r.t. the image (``feature_info``)."""
        self.stage_modules = tuple(modules)
        self.stage_widths = tuple(widths)
        self.stage_reductions = tuple(reductions)

    def _network_stages(self, network: Sequence[nn.Module], slots: Sequence[int]) -> None:
        """The default layout: ``network`` in order, stage i at ``slots[i]``."""
        self.network = nn.ModuleList(network)
        self.stage_slots = tuple(slots)

    # --- the stages (override for another layout than ``network`` / ``stage_slots``)

    def _enter_level(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """What comes before stage i's blocks: the downsampling from stage i-1, if any."""
        slot = self.stage_slots[i]
        if i > 0 and slot - 1 != self.stage_slots[i - 1]:
            x = self.network[slot - 1](x)
        return x

    def _level_blocks(self, i: int) -> nn.Module:
        """Stage i's blocks, in order (an iterable module)."""
        return self.network[self.stage_slots[i]]

    def _prune_after(self, level: int) -> None:
        """Drop the stages after ``level`` and the downsampling that would follow it."""
        self.network = self.network[: self.stage_slots[level] + 1]

    def _level(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Stage i-1's output (or the stem's, i = 0) -> stage i's."""
        x = self._enter_level(x, i)
        for block in self._level_blocks(i):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    # --- forward

    def check_input(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) or an `InputShapeError` naming the shape."""
        in_chans = self.config.in_chans
        if images.ndim != 4 or images.shape[1] != in_chans:
            raise InputShapeError(f"expected images of shape (B, {in_chans}, H, W), "
                                  f"got {tuple(images.shape)}")  # fmt: skip
        return images

    def forward_stem(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> the stem's map in ``layout``, after checking the input."""
        x = self.patch_embed(self.check_input(images))
        return x.permute(0, 2, 3, 1) if self.layout == "NHWC" else x

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> the normed last stage's map, in ``layout``."""
        x = self.forward_stem(images)
        for i in range(len(self.config.depths)):
            x = self._level(x, i)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """A map in ``layout`` -> average over it (B, C) -> logits (B, classes)."""
        x = self.head_drop(x.mean(dim=(1, 2) if self.layout == "NHWC" else (2, 3)))
        return x if pre_logits else self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    # --- timm's API

    def forward_intermediates(
        self,
        images: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Each stage's output, as timm returns them for hierarchical models.

        ``indices``: None all stages, an int n the last n, a sequence those (negative from the
        end). ``norm`` passes the last stage through the final norm (the other stages have
        other widths, as in timm). ``output_fmt`` 'NCHW' gives (B, C_i, H_i, W_i), 'NHWC'
        (B, H_i, W_i, C_i). ``stop_early`` runs no stage after the last one taken; the
        features returned are then that stage's output, not normalised. Returns
        ``(features in layout, [intermediates])`` or the list alone.
        """
        if output_fmt not in LAYOUTS:
            raise ConfigError(f"output_fmt must be one of {LAYOUTS}, got {output_fmt!r}")
        stages = len(self.config.depths)
        taken = take_indices(stages, indices)
        last = max(taken) if stop_early or intermediates_only else stages - 1
        x = self.forward_stem(images)
        intermediates = []
        for i in range(last + 1):
            x = self._level(x, i)
            if i in taken:
                y = self.norm(x) if norm and i == stages - 1 else x
                intermediates.append(_to_format(y, self.layout, output_fmt))
        if intermediates_only:
            return intermediates
        return (self.norm(x) if last == stages - 1 else x), intermediates

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (and the norm, the head), as timm does.

        Returns the stage indices kept for `forward_intermediates`. What remains is a feature
        extractor (timm's ``features_only``): its config still describes the whole model, so
        it is not for saving.
        """
        taken = take_indices(len(self.config.depths), indices)
        self._prune_after(max(taken))
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return taken

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm's feature description: one entry per stage (pyramid level)."""
        return [
            {"module": name, "num_chs": width, "reduction": r}
            for name, width, r in zip(
                self.stage_modules, self.stage_widths, self.stage_reductions, strict=True
            )
        ]

    @property
    def num_features(self) -> int:
        return self.stage_widths[-1]

    head_hidden_size = num_features

    @property
    def blocks(self) -> list[nn.Module]:
        """Each kept stage's blocks: the unit `forward_intermediates` and features_only index
        (as timm's hierarchical models index stages); ``features.FeatureGetter`` reads it."""
        modules = dict(self.named_modules())
        kept = [i for i, name in enumerate(self.stage_modules) if name in modules]
        return [self._level_blocks(i) for i in kept]

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(
        self,
        num_classes: int,
        global_pool: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        """A new zero-initialised head for ``num_classes`` (0: none, `forward` gives features).

        ``global_pool`` is accepted for timm's signature; only 'avg' pooling exists here."""
        if global_pool not in (None, "", "avg"):
            raise ConfigError(f"global_pool must be 'avg', got {global_pool!r}")
        names = tuple(class_names) if class_names is not None else None
        self.config = self.config.replace(num_classes=num_classes, class_names=names)
        param = next(self.patch_embed.parameters())
        head = new_head(self.num_features, num_classes).to(param.device, param.dtype)
        self.head = head.train(self.training)

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's preprocessing dict for this model's weights (from the config)."""
        c = self.config
        return {
            "num_classes": c.num_classes,
            "input_size": (c.in_chans, *c.img_size),
            "fixed_input_size": self.fixed_input_size,
            "mean": tuple(c.mean),
            "std": tuple(c.std),
            "interpolation": c.interpolation,
            "crop_pct": c.crop_pct,
            "pool_size": None,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        }

    default_cfg = pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward: less memory, ~30% more compute.

        (A BatchNorm inside a block then updates its running statistics twice per step, as
        in timm's checkpointed models.)"""
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups: the stem; each stage's (or downsampling's) module
        (``coarse``) or each block, keyed (slot, block), and each downsampling, keyed (slot,),
        so that the keys sort in the order the forward pass runs them (layer-wise LR decay,
        `params.layer_ids`); then the final norm. This is the ``network`` layout; a family
        laid out otherwise overrides it (AS-MLP)."""
        prefix = self.stage_modules[0].rsplit(".", 1)[0]
        if coarse:
            parts = [(rf"^{prefix}\.(\d+)", None)]
        else:
            parts = [(rf"^{prefix}\.(\d+)\.(\d+)\.", None), (rf"^{prefix}\.(\d+)\.", None)]
        return {"stem": r"^patch_embed", "blocks": [*parts, (r"^norm", (99999,))]}

    def layer_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The stem's output and every block's, through all stages in forward order, each in
        ``layout`` ((B, H_i, W_i, C_i) or (B, C_i, H_i, W_i)): the layers `analyze cka`
        compares."""
        x = self.forward_stem(images)
        outputs = [x]
        for i in range(len(self.config.depths)):
            x = self._enter_level(x, i)
            for block in self._level_blocks(i):
                x = block(x)
                outputs.append(x)
        return outputs

    def resize(self, img_size: int | tuple[int, int]) -> StagedNet:
        """The same weights for another input size (a new model): no layer of the zoo's
        pyramids depends on the size, except ViP's, which refuses (`ConfigError`)."""
        spec = family_spec(self.config.family)
        if not spec.any_size:
            raise ConfigError(f"family {spec.name!r} cannot be resized: its weights fit one "
                              f"input size, {self.config.img_size}")  # fmt: skip
        model = model_from_state(self.state_dict(), self.config.replace(img_size=img_size))
        return model.train(self.training)

    def num_params(self, include_head: bool = True) -> int:
        """The family's analytic count (what training reports), equal to the built model's."""
        return family_spec(self.config.family).params(self.config, include_head)

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters recipes exclude from weight decay: norms and biases."""
        return no_weight_decay_names(self)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups: matrices get ``weight_decay``, norms and biases get none."""
        return weight_decay_groups(self, weight_decay)


def _to_format(x: torch.Tensor, layout: str, output_fmt: str) -> torch.Tensor:
    if layout == output_fmt:
        return x
    return x.permute(0, 3, 1, 2) if layout == "NHWC" else x.permute(0, 2, 3, 1)


# --------------------------------------------------------------------------- state dicts


def indexed(state: Mapping[str, Any], prefix: str) -> int:
    """How many of ``prefix0.``, ``prefix1.``, ... the keys of ``state`` start with (in a row)."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state):
        n += 1
    return n


def width_ratio(state: Mapping[str, Any], key: str, dim: int) -> float:
    """An MLP's hidden width over ``dim``, from its fc1 weight (an int where it divides)."""
    hidden = state_width(state, key)
    return hidden // dim if hidden % dim == 0 else hidden / dim


def state_width(state: Mapping[str, Any], key: str) -> int:
    """The output width (first dimension) of a Linear or conv weight in ``state``."""
    if key not in state:
        raise CheckpointError(f"checkpoint has no {key!r}: truncated, or not this family's")
    return int(state[key].shape[0])


def config_from_shapes(
    config_class: Any,
    variants: Mapping[str, Any],
    architecture: dict[str, Any],
    img_size: Any,
    fields: Mapping[str, Any],
) -> Any:
    """A zoo config from what a state dict's shapes tell (``architecture``), the caller's
    ``img_size`` and ``fields`` (sidecar, defaults). What shapes cannot tell (e.g. AS-MLP's
    shift size, the eval crop) comes from the registered variant with that architecture, else
    from the config class's defaults; ``img_size`` None: the variant's (224)."""
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in architecture.items()}
    same = [
        v for v in variants.values()
        if all(getattr(v, k) == value for k, value in arch.items() if k != "num_classes")
    ]  # fmt: skip
    base = same[0] if same else config_class()
    size = {"img_size": img_size} if img_size is not None else {}
    stats = _stats_for(base, arch.get("in_chans", base.in_chans))
    try:
        return base.replace(**{**arch, **size, **stats, **dict(fields)})
    except ConfigError as err:
        raise CheckpointError(f"the checkpoint's shapes give no valid {config_class.__name__}: "
                              f"{err}") from err  # fmt: skip


def _stats_for(base: Any, in_chans: int) -> dict[str, tuple[float, ...]]:
    """``mean`` / ``std`` for a stem of ``in_chans`` where the shapes give another count than
    ``base``'s statistics have (a grayscale model saved without its settings): each the
    average of ``base``'s over its channels, once per channel; {} where they fit."""
    if len(base.mean) == in_chans:
        return {}
    return {name: (sum(v) / len(v),) * in_chans
            for name, v in (("mean", base.mean), ("std", base.std))}  # fmt: skip


def pyramid_levels(state: Mapping[str, Any]) -> dict[str, list]:
    """``embed_dims``, ``depths`` and ``mlp_ratios`` of a state dict whose stages are
    ``network.{2i}``, downsamplings between (CycleMLP, Wave-MLP, Hire-MLP)."""
    levels = range(0, indexed(state, "network."), 2)
    dims = [state_width(state, f"network.{i}.0.norm1.weight") for i in levels]
    fc1 = [f"network.{i}.0.mlp.fc1.weight" for i in levels]
    return {
        "embed_dims": dims,
        "depths": [indexed(state, f"network.{i}.") for i in levels],
        "mlp_ratios": [width_ratio(state, key, d) for key, d in zip(fc1, dims, strict=True)],
    }


def head_classes(state: Mapping[str, Any]) -> int:
    """The classes of the ``head`` Linear, 0 where the state has no head."""
    return shape_of(state, "head.weight", 2)[0] if "head.weight" in state else 0
