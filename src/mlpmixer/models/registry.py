"""The paper's model table (and small models for small images) as a registry of configs.

``create_model("mixer_b16_224")``, ``create_model("B/16")`` and
``create_model("Mixer-B/16")`` build the same model. Configs are data: an entry is a name,
a `MixerConfig`, a sentence and where its published weights are; ``register_model`` adds one.

Pretrained weights are named ``<model>.<tag>`` as in timm (``mixer_b16_224.goog_in21k_ft_in1k``)
or asked for with ``pretrained=True`` (the model's first tag). Sources are timm's copies on the
Hugging Face hub and Google's original .npz files (bucket ``mixer_models``); reading them is
`mlpmixer.checkpoints`' business, imported only when weights are asked for.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointNotFoundError, ConfigError
from . import as_mlp, cyclemlp, gmixer, gmlp, hire_mlp, mixer, resmlp, vip, wave_mlp  # noqa: F401  (the built-in families: their specs)
from .base import MlpFamilyModel, build_model
from .config import MixerConfig
from .features import FeatureGetter
from .pretrained import manual_page, sources
from .spec import FamilySpec, families
from .state_fit import replaced
from .timm_families import register_family


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config: MixerConfig
    description: str
    paper_params_m: int | None = None  # the paper's Table 1 figure (backbone, millions)
    # tag -> source (hub id or URL) of published weights; the first tag is the default.
    pretrained: dict[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    config: MixerConfig,
    description: str,
    paper_params_m: int | None = None,
    pretrained: dict[str, str] | None = None,
) -> None:
    if name in _REGISTRY:
        raise ConfigError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(name, config, description, paper_params_m, dict(pretrained or {}))


# The paper's Table 1: (size, blocks N, patch P, hidden C, D_S, D_C, params in millions).
_PAPER_TABLE = [
    ("s", 8, 32, 512, 256, 2048, 19),
    ("s", 8, 16, 512, 256, 2048, 18),
    ("b", 12, 32, 768, 384, 3072, 60),
    ("b", 12, 16, 768, 384, 3072, 59),
    ("l", 24, 32, 1024, 512, 4096, 206),
    ("l", 24, 16, 1024, 512, 4096, 207),
    ("h", 32, 14, 1280, 640, 5120, 431),
]
for _size, _n, _p, _c, _ds, _dc, _params in _PAPER_TABLE:
    register_model(
        f"mixer_{_size}{_p}_224",
        MixerConfig(
            img_size=224,
            patch_size=_p,
            hidden_dim=_c,
            num_blocks=_n,
            tokens_mlp_dim=_ds,
            channels_mlp_dim=_dc,
        ),
        f"Mixer-{_size.upper()}/{_p} of the paper, 224x224 RGB",
        paper_params_m=_params,
        pretrained=sources(f"mixer_{_size}{_p}_224"),
    )

# Small Mixers for small images (not in the paper). Same block design, fewer and thinner
# blocks; sized so that CPU training takes seconds to minutes.
register_model(
    "mixer_t2_8",
    MixerConfig(
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        hidden_dim=128,
        num_blocks=4,
        tokens_mlp_dim=64,
        channels_mlp_dim=512,
        mean=(0.5,),
        std=(0.5,),
        crop_pct=1.0,
    ),
    "tiny Mixer for 8x8 grayscale images (scikit-learn digits), 16 tokens of 2x2 pixels",
)
register_model(
    "mixer_t4_28",
    MixerConfig(
        img_size=28,
        patch_size=4,
        in_chans=1,
        num_classes=10,
        hidden_dim=128,
        num_blocks=6,
        tokens_mlp_dim=64,
        channels_mlp_dim=512,
        mean=(0.5,),
        std=(0.5,),
        crop_pct=1.0,
    ),
    "tiny Mixer for 28x28 grayscale images (MNIST, Fashion-MNIST), 49 tokens of 4x4 pixels",
)
register_model(
    "mixer_s4_32",
    MixerConfig(
        img_size=32,
        patch_size=4,
        num_classes=10,
        hidden_dim=256,
        num_blocks=8,
        tokens_mlp_dim=128,
        channels_mlp_dim=1024,
        crop_pct=1.0,
    ),
    "small Mixer for 32x32 RGB images (CIFAR-10/100), 64 tokens of 4x4 pixels",
)

# The rest of the family, under timm's names and with timm's configs (timm/models/mlp_mixer.py).
register_family(
    lambda name, config, description: register_model(
        name, config, description, pretrained=sources(name)
    )
)


def _variant_entry(spec: FamilySpec, name: str) -> ModelEntry:
    description = f"{spec.paper.title} {name} ({spec.description or spec.name})"
    return ModelEntry(name, spec.variants[name], description, pretrained=sources(name))


def _entries() -> dict[str, ModelEntry]:
    """The registered models: the tables above, then each family spec's ``variants`` (read at
    each call, so a family registered later lists its models without a second step)."""
    entries = dict(_REGISTRY)
    for spec in families():
        for name in spec.variants:
            entries.setdefault(name, _variant_entry(spec, name))
    return entries


def resolve_name(name: str) -> str:
    """Registry name for ``name``: ``mixer_b16_224``, ``B/16``, ``Mixer-B/16`` or ``b16``."""
    entries = _entries()
    if name in entries:
        return name
    short = re.fullmatch(r"(?:mixer[-_ ]?)?([sblh])[/_]?(\d+)", name.strip(), flags=re.IGNORECASE)
    if short:
        candidate = f"mixer_{short.group(1).lower()}{short.group(2)}_224"
        if candidate in entries:
            return candidate
    raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell-style ``pattern``, in registration order.

    ``pretrained=True`` lists published weights instead, as timm does: ``name.tag``
    (``gmlp_s16_224.ra3_in1k``), the pattern matched against the model name or the full name.
    """
    if not pretrained:
        return [n for n in _entries() if fnmatch.fnmatch(n, pattern)]
    return [
        f"{n}.{tag}"
        for n, entry in _entries().items()
        for tag in entry.pretrained
        if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(f"{n}.{tag}", pattern)
    ]


def model_entry(name: str) -> ModelEntry:
    return _entries()[resolve_name(name)]


def model_config(name: str, **overrides: Any) -> MixerConfig:
    """The registered config of ``name`` with ``overrides`` applied (validated)."""
    return replaced(model_entry(name).config, **overrides)


def pretrained_source(name: str, tag: str | None = None) -> str:
    """Where the weights ``name`` (with ``tag``, else the default) are published."""
    tags = model_entry(name).pretrained
    if not tags:
        with_weights = [n for n, entry in _entries().items() if entry.pretrained]
        raise ConfigError(f"no published weights for {name!r}; models with weights: {with_weights}")
    tag = tag or next(iter(tags))
    if tag not in tags:
        raise ConfigError(f"unknown tag {tag!r} for {name}; known: {', '.join(tags)}")
    return tags[tag]


FEATURE_OPTIONS = ("out_indices", "output_fmt", "feature_cls", "norm", "prune")


def create_model(
    name: str,
    pretrained: bool = False,
    reset_head: bool = False,
    features_only: bool = False,
    **overrides: Any,
) -> MlpFamilyModel | FeatureGetter:
    """Build a registered model: ``create_model("mixer_b16_224")``, ``create_model("B/16")``.

    ``pretrained=True`` (or a name with a tag, ``"mixer_b16_224.goog_in21k"``) loads published
    weights; downloading needs a network and fails with a clear `DownloadError` offline.
    ``overrides`` change config fields (``num_classes=10, reset_head=True`` to fine-tune).
    ``features_only=True`` returns timm's feature extractor (`FeatureGetter`): the outputs of
    the blocks ``out_indices`` (default the last 3) as (B, C, H/P, W/P) maps
    (``output_fmt="NLC"``: (B, S, C)); ``norm=True`` passes them through the final norm.
    """
    options = {k: overrides.pop(k) for k in FEATURE_OPTIONS if k in overrides}
    if options and not features_only:
        raise ConfigError(f"{sorted(options)} apply only with features_only=True")
    if options.pop("feature_cls", "getter") != "getter":
        raise ConfigError("feature_cls: these models have only timm's 'getter' feature models")
    model = _create(name, pretrained, reset_head, overrides)
    return FeatureGetter(model, **options) if features_only else model


def _create(
    name: str, pretrained: bool, reset_head: bool, overrides: dict[str, Any]
) -> MlpFamilyModel:
    base, _, tag = name.partition(".")
    base = resolve_name(base)
    if not (pretrained or tag):
        return build_model(model_config(base, **overrides))
    source = pretrained_source(base, tag or None)
    page = manual_page(source)
    if page is not None:  # a share page (Google Drive, OneDrive), not a file
        raise CheckpointNotFoundError(
            f"{base}: its official weights cannot be downloaded by a program; download the "
            f"file by hand from {page} and pass its path: mlpmixer.load_model(PATH) "
            f"(command line: --checkpoint PATH)"
        )
    # checkpoints/ builds on models/ (and may download): imported at the call, when weights
    # are asked for, never by importing models/
    from ..checkpoints import load_model

    return load_model(source, reset_head=reset_head, **overrides)
