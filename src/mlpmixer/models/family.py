"""Which class builds which family: filled by `MlpFamilyModel` subclasses as they are defined."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # annotations only (base.py fills the table)
    from .base import MlpFamilyModel
    from .config import MixerConfig

_FAMILY_CLASSES: dict[str, type[MlpFamilyModel]] = {}


def register_family_class(cls: type[MlpFamilyModel]) -> None:
    """Record ``cls`` as the class of ``cls.family`` (the first class to claim a family keeps it)."""
    _FAMILY_CLASSES.setdefault(cls.family, cls)


def family_class(family: str) -> type[MlpFamilyModel]:
    """The model class that builds ``family`` (a `MixerConfig.family` value)."""
    if family not in _FAMILY_CLASSES:
        raise ConfigError(f"unknown model family {family!r}; known: {sorted(_FAMILY_CLASSES)}")
    return _FAMILY_CLASSES[family]


def build_model(config: MixerConfig) -> MlpFamilyModel:
    """A freshly initialised model of ``config.family``."""
    return family_class(config.family)(config)
