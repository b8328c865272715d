"""Checkpoint formats in and out: the project's own, Google's official .npz, and timm's.

checkpoints/ builds on models/; models/ imports nothing of it when imported (a model's file
I/O methods import it at the call: models/io.py).
"""

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
