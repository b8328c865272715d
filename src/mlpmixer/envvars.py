"""Settings read from environment variables, checked at the boundary like flags and configs."""

from __future__ import annotations

import math
import os

from .errors import ConfigError


def positive_number(name: str, default: float) -> float:
    """``$name`` as a finite number > 0, or ``default`` when unset.

    A bad value is a `ConfigError` naming the variable and the text (exit 2), never a silent
    fallback: a limit the user meant to set must not quietly stay at its default.
    """
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"${name} must be a positive number, got {text!r}")
    return value
