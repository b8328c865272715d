"""`MixerConfig`: everything needed to rebuild a Mixer, as plain data.

Field names follow the official JAX code (`hidden_dim`, `num_blocks`, `tokens_mlp_dim`,
`channels_mlp_dim`), so a config reads like the paper's table. The config is what the
project's own checkpoint format stores as ``config.json``: the network and the preprocessing
its weights expect. How a model is run (e.g. gradient checkpointing) is not in it; that is
set on the module (`MlpMixer.set_grad_checkpointing`) and never saved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..choices import INTERPOLATIONS
from ..errors import ConfigError
from .flops import param_count
from .spec import family_spec

RUNTIME_KEYS = ("grad_checkpointing",)
"""Run-time switches that older versions stored in config.json; read and ignored."""

GELU_VARIANTS = ("tanh", "none")
"""``"tanh"``: flax's default GELU, used to train the official checkpoints; ``"none"``: exact erf."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # ImageNet-1k channel statistics (torchvision's, timm's)
IMAGENET_STD = (0.229, 0.224, 0.225)


MAX_PARAMS = 10**10  # 40 GB in float32; the largest published Mixer (H/14) has 0.43e9
MAX_BLOCKS = 1024  # the paper's deepest is 32; building millions of blocks hangs


def to_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``224 -> (224, 224)``; ``(h, w)`` stays; anything else is a `ConfigError` naming ``name``."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ConfigError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ConfigError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    if min(pair) <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return pair  # type: ignore[return-value]


def _positive_int(value: Any, name: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be an int {bound}, got {value!r}")


def _probability(value: Any, name: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")


@dataclass
class MixerConfig:
    """Architecture and preprocessing of one Mixer. Defaults are Mixer-B/16 at 224.

    ``family`` picks the block design: a registered family whose spec's config class is this
    one (models/spec.py: mixer, gmixer, resmlp, gmlp); configs saved before the field
    existed have no ``family`` and load as ``"mixer"``. For gMixer the MLP widths are the first
    layer's outputs, twice the gated width; ResMLP and gMLP mix tokens with an S×S linear
    layer and ignore ``tokens_mlp_dim`` (kept equal to S by the registry and resize); for
    gMLP ``channels_mlp_dim`` is the first layer's width (the spatial gate halves it).
    """

    family: str = "mixer"
    img_size: tuple[int, int] = (224, 224)
    patch_size: tuple[int, int] = (16, 16)
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head, the model returns pooled features
    hidden_dim: int = 768  # C
    num_blocks: int = 12  # N
    tokens_mlp_dim: int = 384  # D_S
    channels_mlp_dim: int = 3072  # D_C
    gelu: str = "tanh"
    norm_eps: float = 1e-6
    drop_rate: float = 0.0  # dropout inside both MLPs and before the head
    drop_path_rate: float = 0.0  # stochastic depth of the last block; rises linearly from 0
    drop_path_scale: bool = True  # rescale kept branches by 1/(1-p) (timm) or not (big_vision)
    layer_scale_init: float = 1e-4  # ResMLP only: initial LayerScale (timm: 1e-4/1e-5/1e-6)
    # Preprocessing the weights expect; used by eval/predict and stored with checkpoints.
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    class_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        self.img_size = to_pair(self.img_size, "img_size")
        self.patch_size = to_pair(self.patch_size, "patch_size")
        for name in ("in_chans", "hidden_dim", "num_blocks", "tokens_mlp_dim", "channels_mlp_dim"):
            _positive_int(getattr(self, name), name)
        _positive_int(self.num_classes, "num_classes", allow_zero=True)
        for side, size, patch in zip(
            ("height", "width"), self.img_size, self.patch_size, strict=True
        ):
            if size % patch:
                raise ConfigError(
                    f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}: "
                    f"image {side} {size} leaves {size % patch} pixels over"
                )
        self._check_family()
        self._check_size()  # after the family check: the parameter count depends on it
        if self.gelu not in GELU_VARIANTS:
            raise ConfigError(f"gelu must be one of {GELU_VARIANTS}, got {self.gelu!r}")
        _probability(self.drop_rate, "drop_rate")
        _probability(self.drop_path_rate, "drop_path_rate")
        if not (isinstance(self.norm_eps, float | int) and self.norm_eps > 0):
            raise ConfigError(f"norm_eps must be a positive number, got {self.norm_eps!r}")
        self._check_preprocessing_types()
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        for name in ("mean", "std"):
            if len(getattr(self, name)) != self.in_chans:
                self._broadcast_stat(name)
        if min(self.std) <= 0:
            raise ConfigError(f"std must be positive, got {self.std}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ConfigError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")
        if self.class_names is not None:
            self.class_names = tuple(str(c) for c in self.class_names)
            if len(self.class_names) != self.num_classes:
                raise ConfigError(
                    f"class_names has {len(self.class_names)} names but num_classes is "
                    f"{self.num_classes}"
                )

    def _check_family(self) -> None:
        """A registered family whose config this class is, and the family's own checks."""
        spec = family_spec(self.family)  # ConfigError naming an unknown family and the known
        if spec.config_class is not MixerConfig:
            raise ConfigError(
                f"family {self.family!r} has its own config class "
                f"{spec.config_class.__name__}, not MixerConfig"
            )
        if spec.validate is not None:
            spec.validate(self)

    def _check_size(self) -> None:
        """Refuse absurd sizes (from a hostile or mistyped config.json) before anything is built."""
        if self.num_blocks > MAX_BLOCKS:
            raise ConfigError(
                f"num_blocks={self.num_blocks} is more than the limit of {MAX_BLOCKS} blocks"
            )
        params = param_count(self)
        if params > MAX_PARAMS:
            sizes = ", ".join(
                f"{name}={getattr(self, name)}"
                for name in ("hidden_dim", "num_blocks", "tokens_mlp_dim", "channels_mlp_dim",
                             "in_chans", "num_classes")
            )  # fmt: skip
            raise ConfigError(
                f"the config gives a model of {params:.3g} parameters ({sizes}, "
                f"{self.num_tokens} tokens), more than the limit of {MAX_PARAMS:.0e}"
            )

    def _check_preprocessing_types(self) -> None:
        """Types of the preprocessing fields, which come from files (config.json, timm's
        pretrained_cfg): a wrong one was a TypeError deep in eval/predict, or a mode that
        failed every image at prediction time."""

        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        for name in ("mean", "std"):
            values = getattr(self, name)
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                values = None
            if not values or not all(number(v) for v in values):
                raise ConfigError(
                    f"{name} must be a list of finite numbers, got {getattr(self, name)!r}"
                )
        if not number(self.crop_pct):
            raise ConfigError(f"crop_pct must be a number in (0, 1], got {self.crop_pct!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                f"got {self.interpolation!r}"
            )
        names = self.class_names
        if names is not None and (
            isinstance(names, str | bytes)
            or not isinstance(names, Sequence)
            or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in names)
        ):
            raise ConfigError(f"class_names must be a list of strings or null, got {names!r}")

    def _broadcast_stat(self, name: str) -> None:
        """A single value, or a 3-channel mean of equal values, adapts to ``in_chans``."""
        values = getattr(self, name)
        if len(set(values)) == 1:
            setattr(self, name, (values[0],) * self.in_chans)
        else:
            raise ConfigError(
                f"{name} has {len(values)} values {values} but in_chans is {self.in_chans}"
            )

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patches along (height, width)."""
        return (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])

    @property
    def num_tokens(self) -> int:
        """S, the number of patches (tokens)."""
        return math.prod(self.grid_size)

    def replace(self, **changes: Any) -> MixerConfig:
        """A validated copy with some fields changed; unknown field names are a `ConfigError`."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown MixerConfig field(s) {unknown}; known: {field_names()}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MixerConfig:
        """Inverse of `to_dict`; unknown keys are a `ConfigError` that names them."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a Mixer config must be a mapping, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k not in RUNTIME_KEYS}
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(f"unknown MixerConfig key(s) {unknown}; known: {field_names()}")
        return cls(**data)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(MixerConfig)]
