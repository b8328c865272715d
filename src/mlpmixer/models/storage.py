"""The project's file format as seen from models/: functions that `mlpmixer.checkpoints` registers.

checkpoints/ builds on models/ (it reads configs and builds models), so models/ must not
import it; the model's own I/O methods (`io.ModelIO`) reach the format through the functions
registered here when ``mlpmixer.checkpoints`` is imported. ``import mlpmixer`` imports its
subpackages lazily (the CLI answers ``--help`` without torch), so `storage` imports
``mlpmixer.checkpoints`` itself the first time a model needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Storage:
    """The format's entry points, as `mlpmixer.checkpoints` defines them."""

    write_native: Callable[..., None]  # (path, config, state, extra_files=None)
    read_native: Callable[..., tuple[dict[str, Any], dict[str, Any]]]  # (name, **hub_options)
    hub_options: tuple[str, ...]
    check_state_fits: Callable[[dict[str, Any], dict[str, Any]], None]
    apply_overrides: Callable[..., Any]  # (config, overrides, reset_head) -> MixerConfig
    load_model: Callable[..., Any]  # (source, reset_head=..., **overrides) -> a model
    native_readme: Callable[..., str]  # (config, location) -> the model card of our hub folder


_registered: Storage | None = None


def register(entry_points: Storage) -> None:
    """Called by ``mlpmixer.checkpoints`` on import."""
    global _registered
    _registered = entry_points


def storage() -> Storage:
    """The registered entry points, importing ``mlpmixer.checkpoints`` (which registers them) at
    the first call that finds none: `resize` and `from_state_dict` after a bare
    ``import mlpmixer`` raised RuntimeError once that import became lazy."""
    if _registered is None:
        importlib.import_module("mlpmixer.checkpoints")  # by name: checkpoints imports models
    if _registered is None:
        raise RuntimeError("mlpmixer.checkpoints did not register the model file format")
    return _registered
