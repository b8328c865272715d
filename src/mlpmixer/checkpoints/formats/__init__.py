"""The checkpoint formats, one module each, and their registry `REGISTRY`.

The names and their order are written once, in `mlpmixer.choices.CHECKPOINT_FORMATS` (the
CLI offers them without importing torch); each names a module of this package that defines
``FORMAT``, a `CheckpointFormat`. Reading tries them in that order (`claiming`); saving
looks one up by name (`writer`) or by the destination's suffix (`implied_by`). The functions
read `REGISTRY` at each call, so a format put into it (as tests/checkpoints/
test_adding_a_format.py does) is read, written and converted like the others.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from ...choices import CHECKPOINT_FORMATS
from ...errors import ConfigError
from .base import Candidate, CheckpointFormat

DEFAULT = "native"  # what a destination is written as when no format claims its suffix


def _load(name: str, writes: bool) -> CheckpointFormat:
    fmt: CheckpointFormat = import_module(f"{__name__}.{name}").FORMAT
    if fmt.name != name or (fmt.write is not None) != writes:
        raise TypeError(  # a mistake in this package, caught on import: never a user's
            f"{__name__}.{name}.FORMAT is named {fmt.name!r} and "
            f"{'writes' if fmt.write else 'is read only'}; choices.CHECKPOINT_FORMATS says "
            f"{name!r}, {'writes' if writes else 'read only'}"
        )
    return fmt


REGISTRY: tuple[CheckpointFormat, ...] = tuple(_load(*entry) for entry in CHECKPOINT_FORMATS)


def claiming(candidate: Candidate) -> CheckpointFormat:
    """The first format whose ``detect`` claims ``candidate``; `CheckpointError` if none does."""
    for fmt in REGISTRY:
        if fmt.detect(candidate):
            return fmt
    raise candidate.unclaimed()


def writer(name: str) -> CheckpointFormat:
    """The format called ``name``, if it writes; else `ConfigError` listing those that do."""
    writable = [fmt for fmt in REGISTRY if fmt.write is not None]
    found = next((fmt for fmt in writable if fmt.name == name), None)
    if found is None:
        names = tuple(fmt.name for fmt in writable)
        raise ConfigError(f"format must be one of {names}, got {name!r}")
    return found


def implied_by(path: Path) -> str:
    """The format a destination's suffix implies (the first that lists it), else `DEFAULT`."""
    return next((fmt.name for fmt in REGISTRY if path.suffix in fmt.suffixes), DEFAULT)
