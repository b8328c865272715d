"""Checkpoint formats in and out: the project's own, Google's official .npz, and timm's.

Importing this package registers the project's format with the models (`models.storage`):
models/ does not import checkpoints/, which builds on it.
"""

from ..models import storage as _storage
from . import native, run_model, state_fit
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

# Looked up at each call (not bound now), so that what a test or a plugin replaces in these
# modules is what the models use, as with an import inside the method.
_storage.register(
    _storage.Storage(
        write_native=lambda *args, **kwargs: native.write_native(*args, **kwargs),
        read_native=lambda *args, **kwargs: native.read_native(*args, **kwargs),
        hub_options=tuple(native.HUB_OPTIONS),
        check_state_fits=lambda *args, **kwargs: state_fit.check_state_fits(*args, **kwargs),
        apply_overrides=lambda *args, **kwargs: state_fit.apply_overrides(*args, **kwargs),
        load_model=lambda *args, **kwargs: load_model(*args, **kwargs),
        native_readme=lambda *args, **kwargs: run_model.native_readme(*args, **kwargs),
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
