"""What the hierarchical (four-level pyramid) zoo families share: config plumbing, timm's API
and a few layers.

A pyramid model is a stem, then four levels of blocks with a downsampling step between two
levels, a final norm and a linear head on the average-pooled map. Everything runs in NCHW
(the layout of the official code of AS-MLP, Wave-MLP and Hire-MLP). A family model provides
``patch_embed`` (the stem), ``norm``, ``head``, ``head_drop``, ``_enter_level(x, i)`` (the
downsampling before level i), ``_level_blocks(i)``, ``_prune_after(level)``,
``_level_modules`` (the module name of each level), ``_level_widths`` and ``_stem_stride``;
`PyramidApi` provides the rest of timm's API on top.

The config side: `ZooConfigMixin` gives every zoo config the common checks, ``to_dict``,
``from_dict`` and ``replace``, with errors that name the key. The layers: `DropPath`, the
overlapping stem's geometry (`level_sizes`) and the split-attention sum of three branches
(`reweighted_sum`) that Wave-MLP and Hire-MLP share.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..choices import INTERPOLATIONS
from ..errors import ConfigError, InputShapeError
from .config import MAX_BLOCKS, MAX_PARAMS, to_pair
from .layers import drop_path
from .params import no_weight_decay_names, weight_decay_groups

OUTPUT_FORMATS = ("NCHW", "NHWC")
NUM_LEVELS = 4
# The overlapping stem of Wave-MLP and Hire-MLP: a 7x7 conv, stride 4, padding 2 (then 3x3
# stride-2 convs with padding 1 between levels)
STEM_KERNEL, STEM_STRIDE, STEM_PAD = 7, 4, 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class ZooConfigMixin:
    """Common fields' checks and the JSON round trip of a zoo family's frozen config.

    The dataclass using it declares ``family``, ``img_size``, ``in_chans``, ``num_classes``,
    ``drop_rate``, ``drop_path_rate``, ``mean``, ``std``, ``interpolation``, ``crop_pct`` and
    ``class_names`` (MixerConfig's names and meanings).
    """

    FAMILY = ""  # the family name this config class accepts

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
            self._set(name, values)
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

    def _per_level(self, name: str, check: str = "int") -> None:
        """A per-level field: four positive ints (or numbers, ``check="number"``), as a tuple."""
        values = getattr(self, name)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise ConfigError(f"{name} must be a list of {NUM_LEVELS} values, got {values!r}")
        values = tuple(values)
        ok = _is_int if check == "int" else _is_number
        if len(values) != NUM_LEVELS or not all(ok(v) and v > 0 for v in values):
            kind = "ints" if check == "int" else "numbers"
            raise ConfigError(f"{name} must be {NUM_LEVELS} positive {kind}, got {values!r}")
        self._set(name, values)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

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
    """Stochastic-depth rate per block, rising linearly from 0 to ``rate`` over all blocks."""
    total = sum(depths)
    flat = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [flat[s : s + d] for s, d in zip(starts, depths, strict=True)]


class DropPath(nn.Module):
    """Stochastic depth of a residual branch (timm's: kept branches scaled by 1/(1-p))."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, scale=True)


class PyramidApi:
    """timm's model API for a four-level NCHW pyramid (a mixin of the family's nn.Module)."""

    patch_embed: nn.Module
    norm: nn.Module
    head: nn.Module
    head_drop: nn.Module
    _level_modules: tuple[str, ...]
    _level_widths: tuple[int, ...]
    _stem_stride: int

    grad_checkpointing = False

    def _enter_level(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """What comes before level i's blocks: the downsampling from level i-1 (i > 0)."""
        raise NotImplementedError

    def _level_blocks(self, i: int) -> nn.Module:
        """Level i's blocks, in order (an iterable module)."""
        raise NotImplementedError

    def _level(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Level i-1's output (or the stem's, i = 0) -> level i's: (B, C_i, h_i, w_i)."""
        x = self._enter_level(x, i)
        for block in self._level_blocks(i):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def _prune_after(self, level: int) -> None:
        """Drop the levels after ``level`` and the downsampling that would follow it."""
        raise NotImplementedError

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the levels after the last of ``indices`` (and the norm, the head), as timm does.

        Returns the level indices kept for `forward_intermediates`. What remains is a feature
        extractor (timm's ``features_only``): its config still describes the whole model, so
        it is not for saving.
        """
        taken = _take_levels(indices)
        self._prune_after(max(taken))
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return taken

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward: less memory, ~30% more compute.

        (A BatchNorm inside a block then updates its running statistics twice per step, as
        in timm's checkpointed models.)"""
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups: the stem, each level's module, then the final norm."""
        level = self._level_modules[0].rsplit(".", 1)[0]
        return {"stem": r"^patch_embed", "blocks": [(rf"^{level}\.(\d+)", None),
                                                     (r"^norm", (99999,))]}  # fmt: skip

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters recipes exclude from weight decay: norms and biases."""
        return no_weight_decay_names(self)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups: matrices get ``weight_decay``, norms and biases get none."""
        return weight_decay_groups(self, weight_decay)

    def check_input(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) or an `InputShapeError` naming the shape."""
        in_chans = self.config.in_chans
        if images.ndim != 4 or images.shape[1] != in_chans:
            raise InputShapeError(f"expected images of shape (B, {in_chans}, H, W), "
                                  f"got {tuple(images.shape)}")  # fmt: skip
        return images

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> the normed last-level map (B, C_4, H/32, W/32), NCHW."""
        x = self.patch_embed(self.check_input(images))
        for i in range(NUM_LEVELS):
            x = self._level(x, i)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, C, h, w) -> average over the map (B, C) -> logits (B, classes)."""
        x = self.head_drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def forward_intermediates(
        self,
        images: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Each pyramid level's output, as timm returns them for hierarchical models.

        ``indices``: None all four levels, an int n the last n, a sequence those (negative from
        the end). Level i is (B, C_i, H/(4·2^i), W/(4·2^i)) (sizes rounded as the strides
        round them). ``norm`` passes the last level through the final norm (the other levels
        have none, as in timm). ``output_fmt`` 'NCHW' or 'NHWC'. ``stop_early`` stops after
        the last level taken. Returns ``(features, [levels])`` or the list alone.
        """
        if output_fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"output_fmt must be one of {OUTPUT_FORMATS}, got {output_fmt!r}")
        taken = _take_levels(indices)
        last = max(taken) if stop_early or intermediates_only else NUM_LEVELS - 1
        x = self.patch_embed(self.check_input(images))
        levels = []
        for i in range(last + 1):
            x = self._level(x, i)
            if i in taken:
                y = self.norm(x) if norm and i == NUM_LEVELS - 1 else x
                levels.append(y.permute(0, 2, 3, 1) if output_fmt == "NHWC" else y)
        if intermediates_only:
            return levels
        return self.norm(x), levels

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm's feature description: one entry per pyramid level."""
        return [
            {"module": name, "num_chs": width, "reduction": self._stem_stride * 2**i}
            for i, (name, width) in enumerate(
                zip(self._level_modules, self._level_widths, strict=True)
            )
        ]

    @property
    def num_features(self) -> int:
        return self._level_widths[-1]

    head_hidden_size = num_features

    @property
    def blocks(self) -> list[nn.Module]:
        """Each level's blocks: the unit `forward_intermediates` and features_only index (as
        timm's hierarchical models index stages); ``features.FeatureGetter`` reads it."""
        kept = len(self._level_modules)
        modules = dict(self.named_modules())
        return [self._level_blocks(i) for i in range(kept) if self._level_modules[i] in modules]

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
            "fixed_input_size": False,
            "mean": tuple(c.mean),
            "std": tuple(c.std),
            "interpolation": c.interpolation,
            "crop_pct": c.crop_pct,
            "pool_size": None,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        }

    default_cfg = pretrained_cfg


def linear_head(width: int, num_classes: int) -> nn.Module:
    """Linear(width, classes), or Identity for 0 classes (`forward` then gives features)."""
    return nn.Linear(width, num_classes) if num_classes else nn.Identity()


def new_head(width: int, num_classes: int) -> nn.Module:
    """Zero-initialised Linear(width, classes), or Identity for 0 classes."""
    if num_classes == 0:
        return nn.Identity()
    head = nn.Linear(width, num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def level_sizes(img_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(h, w) of each level's map behind the overlapping stem: (H-3)//4 + 1, then ceil of halves."""
    h, w = ((s + 2 * STEM_PAD - STEM_KERNEL) // STEM_STRIDE + 1 for s in img_size)
    sizes = [(h, w)]
    for _ in range(3):
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        sizes.append((h, w))
    return sizes


def reweighted_sum(
    reweight: nn.Module, h: torch.Tensor, w: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """Branches (B, C, H, W) weighted per channel by a softmax over the three branches.

    The weights come from the mean over pixels of h + w + c through ``reweight`` (C -> 3C);
    its output 3c + k is branch k's logit for channel c.
    """
    b, ch = h.shape[:2]
    pooled = (h + w + c).mean(dim=(2, 3), keepdim=True)
    weights = reweight(pooled).reshape(b, ch, 3).softmax(dim=2)  # (B, C, 3)
    weights = weights[..., None, None]
    return h * weights[:, :, 0] + w * weights[:, :, 1] + c * weights[:, :, 2]


def _take_levels(indices: int | Sequence[int] | None) -> list[int]:
    if indices is None:
        return list(range(NUM_LEVELS))
    if _is_int(indices):
        if not 0 < indices <= NUM_LEVELS:
            raise ConfigError(f"indices={indices}: last-n must be in 1..{NUM_LEVELS}")
        return list(range(NUM_LEVELS - indices, NUM_LEVELS))
    taken = [i + NUM_LEVELS if i < 0 else i for i in indices]
    if not taken or not all(0 <= t < NUM_LEVELS for t in taken):
        raise ConfigError(f"level indices {list(indices)} out of range for {NUM_LEVELS} levels")
    return taken
