"""A training run's model folder: native weights with a model card that reports the run.

Composes three formats: the card text (`model_card`), timm's registry entry for the config
(`timm_format`, whose own cards `model_card` writes) and the native folder (`native`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..models.config import MixerConfig
from ..models.spec import family_spec
from . import native
from .model_card import native_card
from .timm_format import timm_spec


def native_readme(
    config: MixerConfig, location: str, summary: Mapping[str, Any] | None = None
) -> str:
    """`native_card` with the timm section filled in from timm's registry."""
    if family_spec(config.family).timm is None:
        note = f"timm has no {config.family} models"
    else:
        note = timm_spec(config).unbuildable
    return native_card(config, location, summary, note)


def write_run_model(model: Any, path: Path, summary: Mapping[str, Any]) -> None:
    """Save a run's model (`MlpFamilyModel`) at ``path`` with a card reporting ``summary``."""
    card = native_readme(model.config, str(path), summary)
    # looked up at the call, as checkpoints/__init__ does: what a test replaces is used
    native.write_native(path, model.config, model.state_dict(), extra_files={"README.md": card})
