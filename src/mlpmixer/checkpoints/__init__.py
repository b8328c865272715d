"""Checkpoint formats in and out: the project's own, Google's official .npz, and timm's.

Importing this package registers the project's format with the models (`models.storage`):
models/ does not import checkpoints/, which builds on it.
"""

from ..models import storage as _storage
from .load import (
    FORMATS,
    Checkpoint,
    as_model,
    convert,
    describe,
    detect_format,
    load_model,
    read_checkpoint,
    save_model,
)
from .native import HUB_OPTIONS, read_native, write_native
from .state import apply_overrides, check_state_fits

_storage.register(
    _storage.Storage(
        write_native=write_native,
        read_native=read_native,
        hub_options=tuple(HUB_OPTIONS),
        check_state_fits=check_state_fits,
        apply_overrides=apply_overrides,
        load_model=lambda *args, **kwargs: load_model(*args, **kwargs),  # looked up per call
    )
)

__all__ = [
    "FORMATS",
    "Checkpoint",
    "as_model",
    "convert",
    "describe",
    "detect_format",
    "load_model",
    "read_checkpoint",
    "save_model",
]
