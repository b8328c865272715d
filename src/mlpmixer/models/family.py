"""Which class builds which family: the model of the family's `FamilySpec` (models/spec.py)."""

from __future__ import annotations

from typing import Any

from torch import nn

from .spec import family_spec


def family_class(family: str) -> Any:
    """The model class that builds ``family`` (a config's ``family``); `ConfigError` if unknown."""
    return family_spec(family).model


def build_model(config: Any) -> nn.Module:
    """A freshly initialised model of ``config.family``."""
    return family_class(config.family)(config)
