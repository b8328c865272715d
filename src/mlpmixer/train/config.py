"""Training configuration: dataclasses, strict YAML loading and ``key=value`` overrides.

A config has seven sections (``model``, ``data``, ``optim``, ``schedule``, ``augment``,
``train``, ``run``); every key is a typed dataclass field. Loading is strict: an unknown
key, a wrong type or a value out of range is a `ConfigError` that names the dotted key
(``optim.lr``), the value and what was expected. Overrides use the same dotted keys
(``--set optim.lr=1e-3``); the value is parsed as YAML (``true``, ``[0.9, 0.999]``, ``null``).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..choices import Precision
from ..errors import ConfigError
from ..models.config import INTERPOLATIONS
from ..models.config import field_names as mixer_field_names
from ..safeyaml import MAX_CHARS, load_yaml
from . import bounds
from .bounds import CPU_LIMIT, bounded

OptimizerName = Literal["adamw", "adam", "sgd"]
ScheduleName = Literal["cosine", "linear", "constant"]
LossName = Literal["softmax", "sigmoid"]
Parallelism = Literal["ddp", "fsdp"]
ProgressMode = Literal["auto", "bar", "log", "none"]
Interpolation = Literal[INTERPOLATIONS]  # type: ignore[valid-type]
TrainDecode = Literal["full", "reduced"]  # mlpmixer.data.transforms.DECODE_MODES
TrainResize = Literal["torch", "tf"]  # mlpmixer.data.transforms.RESIZE_MODES
MAX_PAD_OR_OPS = 1024  # augment.pad_crop pixels and randaugment ops


# one override: ``--set`` text "section.key=value", or a typed (dotted key, value) pair
Assignment = str | tuple[str, Any]


@dataclass
class ModelSection:
    name: str = "auto"  # registered model; "auto": a small one fitting the data's image size
    pretrained: str | None = None  # checkpoint to start from (fine-tuning): path or hub id
    img_size: int | tuple[int, int] | None = bounded(
        None, ">= 1"
    )  # None: the data's (scratch) or the checkpoint's
    overrides: dict[str, Any] = field(
        default_factory=dict
    )  # MixerConfig fields, e.g. drop_path_rate


@dataclass
class DataSection:
    dataset: str = "digits"  # name, directory, hf:NAME or shards (folder/URL; see mlpmixer.data)
    root: str | None = None  # where named data sets live (default $MLPMIXER_DATA or the cache)
    in_chans: int | None = bounded(
        None, "{1, 3}"
    )  # None: the model's (fine-tuning) or the data's (scratch)
    val_fraction: float = bounded(
        0.1, "(0, 1)"
    )  # held-out share when an image folder has no val/ split
    num_workers: int | None = bounded(
        None, ">= 0", limit=CPU_LIMIT
    )  # None: 0 for in-memory arrays, else the CPU share - 1 (<= 32)
    download: bool = True
    eval_crop_pct: float | None = bounded(
        None, "(0, 1]"
    )  # None: 1.0 from scratch, the checkpoint's when fine-tuning
    interpolation: Interpolation | None = None  # resizing; None: bilinear, or the checkpoint's
    # evaluation's resize if not `interpolation`; area: big_vision's resize_small (TF's, exact)
    eval_resize: Interpolation | None = None
    # image files' training crop: full (TF's decode_and_crop_jpeg, as big_vision) or reduced
    # (DCT scaling where the crop allows: faster on large photos); resized by torch (within 1 grey level of TF) or tf (bit for bit)
    train_decode: TrainDecode = "full"
    train_resize: TrainResize = "torch"
    skip_bad_images: bool = False  # image folders: leave unreadable files out (listed in the run)
    train_split: str | None = None  # hf:NAME / shards: the data set's split to train on (train)
    val_split: str | None = None  # hf:NAME / shards: the held-out split (validation, else test)


@dataclass
class OptimSection:
    name: OptimizerName = "adamw"
    lr: float = bounded(1e-3, "> 0")  # peak learning rate (after warmup)
    weight_decay: float = bounded(
        0.0, ">= 0"
    )  # adamw: decoupled, times lr (torch's AdamW); adam/sgd: L2
    betas: tuple[float, float] = bounded((0.9, 0.999), "[0, 1)")
    eps: float = bounded(1e-8, "> 0")
    momentum: float = bounded(0.9, "[0, 1)")  # sgd only
    nesterov: bool = False  # sgd only
    clip_grad_norm: float | None = bounded(1.0, "> 0")  # global norm; null disables


@dataclass
class ScheduleSection:
    name: ScheduleName = "cosine"  # decay after warmup
    warmup_steps: int = bounded(0, ">= 0")
    # alternative to warmup_steps (only one may be non-zero)
    warmup_epochs: float = bounded(0.0, ">= 0")
    end_lr: float = bounded(0.0, ">= 0")  # learning rate at the last step; <= optim.lr
    scale_warmup: bool = True  # a warmup over 20% of a short run shrinks to 5% of it (logged)


@dataclass
class AugmentSection:
    random_resized_crop: bool = False  # "inception crop": area fraction x aspect ratio, resized
    crop_scale: tuple[float, float] = bounded((0.08, 1.0), "(0, 1]", ordered=True)
    crop_ratio: tuple[float, float] = bounded((0.75, 4.0 / 3.0), "> 0", ordered=True)
    pad_crop: int = bounded(
        0, ">= 0", limit=MAX_PAD_OR_OPS
    )  # pad by N pixels, then crop back at a random offset (CIFAR style)
    hflip: bool = False
    affine_degrees: float = bounded(0.0, "[0, 180]")  # random rotation in [-d, d]
    affine_translate: float = bounded(0.0, "[0, 1)")  # random shift, fraction of the image side
    affine_scale: tuple[float, float] | None = bounded(
        None, "> 0", ordered=True
    )  # random zoom range, e.g. [0.9, 1.1]
    affine_prob: float = bounded(
        1.0, "[0, 1]"
    )  # share of images that get the random affine transform
    randaugment_n: int = bounded(
        0, ">= 0", limit=MAX_PAD_OR_OPS
    )  # RandAugment: ops per image (0: off)
    randaugment_m: float = bounded(
        10.0, "[0, 30]"
    )  # RandAugment magnitude, big_vision's scale (10: nominal max)
    mixup_alpha: float = bounded(0.0, ">= 0")  # Beta(alpha, alpha) mixing coefficient (0: off)
    cutmix_alpha: float = bounded(0.0, ">= 0")  # Beta(alpha, alpha) cut area (0: off)
    mix_switch_prob: float = bounded(
        0.5, "[0, 1]"
    )  # when both are on: chance that a batch uses cutmix


@dataclass
class TrainSection:
    epochs: int = bounded(30, ">= 1")
    steps: int | None = bounded(None, ">= 1")  # total optimizer steps; overrides epochs when set
    batch_size: int = bounded(128, ">= 1")  # global: summed over processes and accumulation steps
    grad_accum: int = bounded(1, ">= 1")
    seed: int = bounded(
        0, "[0, 4294967295]", said="in [0, 2**32 - 1]"
    )  # numpy's and the DataLoader's seeds: < 2**32
    device: str = "auto"  # auto: cuda if available, else cpu
    precision: Precision = "fp32"
    compile: bool = False  # torch.compile the model
    channels_last: bool = False
    deterministic: bool | None = None  # None: on for CPU, off for CUDA (speed)
    threads: int | None = bounded(
        None, ">= 1", limit=CPU_LIMIT
    )  # torch CPU threads; None: torch's default
    loss: LossName = "softmax"
    label_smoothing: float = bounded(0.0, "[0, 1)")
    ema_decay: float = bounded(
        0.0, "[0, 1)"
    )  # exponential moving average of weights (0: off), e.g. 0.9999
    eval_every_epochs: int = bounded(1, ">= 1")
    checkpoint_every_epochs: int = bounded(1, ">= 1")
    checkpoint_every_steps: int = bounded(0, ">= 0")  # 0: only at epoch ends (and the end)
    log_every_steps: int = bounded(50, ">= 1")  # plain log lines when not on a terminal
    parallel: Parallelism = "ddp"  # under torchrun with several processes
    nonfinite_check_every: int = bounded(1, ">= 1")  # check the loss for NaN/inf every N steps
    grad_checkpointing: bool = False  # recompute block activations in backward: less memory
    layer_decay: float | None = bounded(
        None, "(0, 1]"
    )  # layer-wise LR decay (timm's), e.g. 0.75; null: off
    dist_timeout_s: float | None = bounded(
        None, "> 0"
    )  # collective wait in seconds; None: $MLPMIXER_DIST_TIMEOUT_S or 300


@dataclass
class RunSection:
    out: str | None = None  # run directory; None: runs/<dataset>-<model>-<timestamp>
    tensorboard: bool = True  # write event files when tensorboard is installed
    progress: ProgressMode = "auto"  # auto: a bar on a terminal, log lines otherwise
    plot: bool = True  # curves.png


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    train: TrainSection = field(default_factory=TrainSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists) for YAML/JSON."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A validated config; unknown keys, wrong types and bad values raise `ConfigError`.

        Keys of older versions (`RENAMED_KEYS`) are read under their new names, so the
        config.yaml of an older run still resumes.
        """
        config = _build(cls, _renamed(data), "")
        validate(config)
        return config

    def override(self, assignments: Sequence[Assignment]) -> TrainConfig:
        """A validated copy with the assignments applied in order: ``--set`` text
        (``"optim.lr=1e-3"``, the value read as YAML) or typed ``(key, value)`` pairs
        (``("optim.lr", 1e-3)``, the value used as it is: flags already typed by the CLI)."""
        data = self.to_dict()
        keys = []
        for assignment in assignments:
            key, value = parse_assignment(assignment) if isinstance(assignment, str) else assignment
            set_dotted(data, key, value)
            keys.append(key)
        _drop_foreign_overrides(data, self.model, keys)
        return TrainConfig.from_dict(data)

    def replace(self, **sections: Any) -> TrainConfig:
        """``config.replace(train={"epochs": 3})``: a validated copy with fields changed."""
        data = self.to_dict()
        for section, changes in sections.items():
            if section not in data:
                raise ConfigError(f"unknown config section {section!r}; known: {list(data)}")
            for key, value in changes.items():
                set_dotted(data, f"{section}.{key}", value)
        return TrainConfig.from_dict(data)


# old dotted key -> new dotted key
RENAMED_KEYS = {
    "train.max_nonfinite_checks": "train.nonfinite_check_every",
    "model.overrides.grad_checkpointing": "train.grad_checkpointing",  # a run-time switch
}


def _renamed(data: Any) -> Any:
    """``data`` with the keys of `RENAMED_KEYS` moved to their new place (a copy if any moved)."""
    if not isinstance(data, Mapping):
        return data
    data = copy.deepcopy(dict(data))
    for old, new in RENAMED_KEYS.items():
        *parents, leaf = old.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        section, key = new.split(".")
        data.setdefault(section, {})
        if isinstance(data[section], dict):
            data[section].setdefault(key, value)
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- strict, typed construction ------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    if origin is dict:
        return "mapping"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` or `_Mismatch`. Accepts int for float and numeric strings
    for float (PyYAML reads ``1e-3`` as a string)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _Mismatch
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _Mismatch
        return dict(value)
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"unsupported config field type {tp!r}")  # a bug in this module


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}: {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + str(k) for k in unknown)}; "
            f"known keys in {where}: {', '.join(known)}"
        )
    values = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, value, f"{prefix}{name}.")
            continue
        try:
            values[name] = _coerce(value, tp)
        except _Mismatch:
            raise ConfigError(f"{prefix}{name} must be {_type_name(tp)}, got {value!r}") from None
    return cls(**values)


# --- value checks ---------------------------------------------------------------------------


def _require(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {expected}, got {value!r}")


def _nullable(cls: type) -> dict[str, bool]:
    """Field name -> whether its type allows None."""
    return {
        name: type(None) in typing.get_args(tp) for name, tp in typing.get_type_hints(cls).items()
    }


def _check_bounds(c: TrainConfig) -> None:
    """Every number finite and in the range its field declares (see `bounds`)."""
    for section in dataclasses.fields(c):
        part = getattr(c, section.name)
        bounds.check(part, f"{section.name}.", _nullable(type(part)))


def _check_relations(c: TrainConfig) -> None:
    """What one field's bound cannot say: values that depend on another field."""
    t, o, s = c.train, c.optim, c.schedule
    _require(
        t.batch_size % t.grad_accum == 0, "train.batch_size", t.batch_size,
        f"divisible by train.grad_accum={t.grad_accum}",
    )  # fmt: skip
    device_ok = t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:")
    _require(device_ok, "train.device", t.device, "auto, cpu, cuda, cuda:N or mps")
    _require(
        not (s.warmup_steps and s.warmup_epochs), "schedule.warmup_epochs", s.warmup_epochs,
        "0 when schedule.warmup_steps is set (give one of them)",
    )  # fmt: skip
    _require(s.end_lr <= o.lr, "schedule.end_lr", s.end_lr, f"in [0, optim.lr={o.lr}]")


def override_class(name: Any, pretrained: Any = None) -> type | None:
    """The config class the overrides of a model ``name`` are written for: its family's
    (`MixerConfig` for "auto" and pretrained weights); None for a name no model has (its
    validation names it)."""
    from ..models.config import MixerConfig

    if pretrained is not None or name == "auto":
        return MixerConfig
    from ..models.registry import model_entry, resolve_name

    try:
        return type(model_entry(resolve_name(name)).config)
    except (ConfigError, TypeError):
        return None


def _drop_foreign_overrides(data: dict[str, Any], before: ModelSection, keys: list[str]) -> None:
    """A recipe's model fields belong to the kind of model they were written for: when the
    assignments ``keys`` move ``model.name`` to a model of another config class (the digits
    recipe's Mixer -> a CycleMLP), the overrides they did not assign themselves go."""
    model = data.get("model")
    if not isinstance(model, dict) or "model.overrides" in keys:
        return
    new, old = model.get("name"), override_class(before.name, before.pretrained)
    if new == before.name or override_class(new, model.get("pretrained")) in (old, None):
        return
    given = {k.split(".", 2)[2] for k in keys if k.startswith("model.overrides.")}
    overrides = model.get("overrides")
    if isinstance(overrides, dict):
        model["overrides"] = {k: v for k, v in overrides.items() if k in given}


def _override_fields(c: TrainConfig) -> tuple[str, list[str]]:
    """(config class name, its fields): the overrides a model of ``model.name`` takes (its
    family's config class; a MixerConfig for "auto" or pretrained weights)."""
    if c.model.pretrained is None and c.model.name != "auto":
        from ..models.registry import model_entry, resolve_name

        config = model_entry(resolve_name(c.model.name)).config  # ConfigError naming the known
        return type(config).__name__, [f.name for f in dataclasses.fields(config)]
    return "MixerConfig", list(mixer_field_names())


def _check_model(c: TrainConfig) -> None:
    kind, fields = _override_fields(c)
    unknown = sorted(set(c.model.overrides) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown model override(s) {', '.join('model.overrides.' + k for k in unknown)}; "
            f"{kind} fields: {', '.join(fields)}"
        )
    owned = {"img_size": "model.img_size", "in_chans": "data.in_chans"}
    for key, instead in owned.items():
        if key in c.model.overrides:
            raise ConfigError(f"model.overrides.{key}: set {instead} instead")
    if c.model.pretrained is None and c.model.name == "auto":
        return
    if c.model.pretrained is None:
        from ..models.registry import resolve_name

        resolve_name(c.model.name)  # ConfigError naming the known models


def validate(config: TrainConfig) -> None:
    """Raise `ConfigError` (naming the dotted key) for any out-of-range or inconsistent value."""
    _check_bounds(config)
    _check_relations(config)
    _check_model(config)
    if config.train.precision == "fp16" and config.train.device == "cpu":
        raise ConfigError(
            "train.precision fp16 needs a GPU (loss scaling); on CPU use bf16 or fp32"
        )


# --- files and overrides --------------------------------------------------------------------


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise ConfigError(f"config file {path} is not a regular file")
        if path.exists() and path.stat().st_size > 4 * MAX_CHARS:
            raise ConfigError(
                f"config file {path} has {path.stat().st_size} bytes; a config is a few kB"
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:  # a binary or latin-1 file: bad input, not a crash
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text ({err})") from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from err
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    try:
        return TrainConfig.from_dict(data or {})
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"optim.lr=1e-3"`` -> ``("optim.lr", 0.001)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"an override must look like section.key=value, got {text!r}")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({err})") from err
    except ConfigError as err:
        raise ConfigError(f"override {key}: {err}") from err
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key="a.b"``; an unknown section is a `ConfigError`."""
    parts = key.split(".")
    if len(parts) < 2:
        raise ConfigError(f"override key {key!r} needs a section, e.g. optim.lr or train.epochs")
    node = data
    for depth, part in enumerate(parts[:-1]):
        if part not in node or not isinstance(node[part], dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"{where!r} is not a config section, in override {key}={value!r}")
        node = node[part]
    node[parts[-1]] = value
