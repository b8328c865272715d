"""The project's file format as seen from models/: functions that `mlpmixer.checkpoints` registers.

checkpoints/ builds on models/ (it reads configs and builds models), so models/ must not
import it; the model's own I/O methods (`io.ModelIO`) reach the format through the functions
registered here when ``mlpmixer.checkpoints`` is imported (``import mlpmixer`` does).
"""

from __future__ import annotations

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
    """The registered entry points; RuntimeError if ``mlpmixer.checkpoints`` was never imported."""
    if _registered is None:
        raise RuntimeError(
            "model files need mlpmixer.checkpoints: `import mlpmixer` (or mlpmixer.checkpoints) first"
        )
    return _registered
