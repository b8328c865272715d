"""A model family is one entry: its `FamilySpec`, registered with `register_family`.

Everything that reads a family — config validation and config.json, analytic cost, resolution
change, the architecture of a state dict, timm's key names, model cards, bench — looks it up
here by name (`family_spec`), and an unknown name is a `ConfigError` naming it and the known
ones. A family's model file defines its model class, its cost formulas and its spec, and
registers the spec when imported (docs/architecture.md, "Adding a family").

This module imports nothing of the families: they import it, so that it can sit below
config.py and flops.py, which read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # annotations only
    import torch

    StateDict = Mapping[str, torch.Tensor]

DEFAULT_FAMILY = "mixer"  # configs saved before the ``family`` field existed are Mixers


@dataclass(frozen=True)
class Paper:
    """Where a family comes from: shown in model cards and ``mlpmixer models``."""

    title: str  # e.g. "MLP-Mixer"
    arxiv: str  # e.g. "2105.01601"
    license: str  # the published weights' license, as the hub spells it ("apache-2.0")
    repo: str  # the official code

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


@dataclass(frozen=True)
class TimmNames:
    """How timm names this family's weights (timm/models/<file>.py).

    ``block_names``: timm's part names inside ``blocks.<i>.`` -> this package's;
    ``markers``: keys all present in (only) this family's timm state dicts;
    ``reshape``: key suffix -> the shape timm stores such a (C,) vector in (ResMLP's Affine);
    ``name_fixes``: the config fields a timm model name fixes beyond family, patch, width and
    depth (the MLP widths; see checkpoints/timm_format.py);
    ``any_shape``: timm's model class builds any shape of this family from ``model_args``
    (only ``MlpMixer``, whose default block is the Mixer's).
    """

    block_names: Mapping[str, str]
    markers: tuple[str, ...]
    reshape: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    name_fixes: tuple[str, ...] = ()
    any_shape: bool = False


@dataclass(frozen=True)
class FamilySpec:
    """One model family, declared.

    * ``config_class`` reads and writes the family's config.json (``from_dict``/``to_dict``)
      and validates it; `MixerConfig` for mixer/gmixer/resmlp/gmlp, a family's own frozen
      dataclass for the hierarchical ones. ``model`` builds a model from such a config.
    * ``params(config, include_head=True)`` and ``macs(config)``: analytic cost, without building
      the model (MACs per image, head included).
    * ``token_weight``: the block weight (units, S) that reads the tokens, each row one unit's
      weights over the patches (the analysis pictures), or None if the family has none.
    * ``resize``: how the config changes when `MlpFamilyModel.resize` moves the model to
      another patch grid, ``(config, TokenResize) -> config``; None when the family's layers
      do not depend on the image size (``any_size``) or resizing is not written for it.
    * ``markers``: keys (this package's names) all present in this family's state dicts and
      no other's; ``claims(state)`` tells apart families that share them (Mixer and gMixer,
      by shapes). ``config_from_state(state, img_size, fields)``: the config whose parameters
      have exactly the state's shapes (`CheckpointError` otherwise).
    * ``validate(config)``: checks of this family beyond its config class's own (a shared
      config class like `MixerConfig` calls it), raising `ConfigError`; or None.
    * ``timm``: timm's names, or None when timm has no such family.
    * ``unused_fields``: config fields the family reads from no layer (cards leave them out).
    * ``plain``: an independent plain-torch twin for bench's comparison, or None.
    * ``official_npz``: Google's JAX .npz layout holds this family (only the Mixer).
    * ``variants``: registered name -> config (ImageNet-1k 224), added to the model registry.
    * ``layer_kinds``: what each weighted layer does, as ``(pattern, kind)`` pairs tried in
      order on module names (`fnmatch`: ``*`` spans dots), kinds from `LAYER_KINDS`; the
      classifier is ``head`` without a pattern. Read by `layer_kind` (int8 sensitivity).
    """

    name: str
    config_class: type
    model: Callable[..., torch.nn.Module]
    params: Callable[..., int]
    macs: Callable[[Any], int]
    paper: Paper
    markers: tuple[str, ...]
    config_from_state: Callable[..., Any]
    claims: Callable[[StateDict], bool] | None = None
    validate: Callable[[Any], None] | None = None
    token_weight: str | None = None
    resize: Callable[..., Any] | None = None
    any_size: bool = False
    timm: TimmNames | None = None
    unused_fields: tuple[str, ...] = ()
    plain: Callable[[torch.nn.Module], torch.nn.Module] | None = None
    official_npz: bool = False
    classifier: str = "head"  # the head's module name (timm's pretrained_cfg "classifier")
    variants: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""  # one line for listings
    layer_kinds: tuple[tuple[str, str], ...] = ()

    def matches(self, state: StateDict) -> bool:
        """Whether ``state`` (this package's key names) is a state dict of this family."""
        present = all(key in state for key in self.markers)
        return present and (self.claims is None or self.claims(state))


# what a weighted layer does: mixes tokens (across positions), mixes channels (per position),
# weighs a block's branches (the split-attention "reweight" MLP on pooled channels), embeds
# patches, downsamples between stages, or classifies
LAYER_KINDS = ("token-mixing", "channel-mixing", "reweight", "stem", "downsample", "head")


def layer_kind(spec: FamilySpec, name: str) -> str:
    """The kind (one of `LAYER_KINDS`) of module ``name`` in a model of ``spec``'s family:
    the first of ``spec.layer_kinds`` whose pattern matches, ``head`` for the classifier (or
    inside it), ``other`` if none does."""
    if name == spec.classifier or name.startswith(spec.classifier + "."):
        return "head"
    return next((kind for pattern, kind in spec.layer_kinds if fnmatchcase(name, pattern)), "other")


_FAMILIES: dict[str, FamilySpec] = {}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Add ``spec``; a name taken by another spec is a `ConfigError`. Returns ``spec``."""
    known = _FAMILIES.get(spec.name)
    if known is not None and known != spec:
        raise ConfigError(f"model family {spec.name!r} is already registered")
    _FAMILIES[spec.name] = spec
    return spec


def unregister_family(name: str) -> None:
    """Remove a family (tests that add a toy family clean up with this)."""
    _FAMILIES.pop(name, None)


def family_names() -> tuple[str, ...]:
    """Registered family names, in registration order."""
    return tuple(_FAMILIES)


def families() -> Iterator[FamilySpec]:
    return iter(tuple(_FAMILIES.values()))


def family_spec(name: Any) -> FamilySpec:
    """The spec of family ``name``; a `ConfigError` naming it and the known ones otherwise."""
    spec = _FAMILIES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ConfigError(f"unknown model family {name!r}; known: {', '.join(_FAMILIES)}")
    return spec


def config_family(data: Mapping[str, Any]) -> FamilySpec:
    """The spec a config.json mapping belongs to (by its ``family``; none: the Mixer)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
    return family_spec(data.get("family", DEFAULT_FAMILY))


def config_from_dict(data: Mapping[str, Any]) -> Any:
    """A validated config from its config.json mapping, by the family's config class."""
    return config_family(data).config_class.from_dict(data)
