"""Declarative bounds for numeric config fields, and the one check that enforces them.

A field states its range where it is declared::

    lr: float = bounded(1e-3, "> 0")
    label_smoothing: float = bounded(0.0, "[0, 1)")
    crop_scale: tuple[float, float] = bounded((0.08, 1.0), "(0, 1]", ordered=True)
    threads: int | None = bounded(None, ">= 1", limit=CPU_LIMIT)

The range is one of ``">= a"``, ``"> a"``, ``"<= a"``, ``"< a"``, an interval ``"[a, b)"``
(brackets closed, parentheses open) or a set ``"{1, 3}"``. Tuples are checked element-wise
(``ordered``: non-decreasing too); ``None`` passes where the field's type allows it. ``limit``
is what the machine can honour (kept apart from the range: a typo of 10**6 workers is a
different mistake from -1). `check` raises a `ConfigError` naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

BOUND = "bound"  # dataclass field metadata key
CPU_LIMIT = "4 per CPU"  # a limit of 4 x os.cpu_count(): more threads or workers only thrash
MAX_INT = 2**62  # beyond this a number overflows int64 tensors, seeds and step counts (a typo)

_OPERATORS = {
    ">=": lambda v, a: v >= a,
    ">": lambda v, a: v > a,
    "<=": lambda v, a: v <= a,
    "<": lambda v, a: v < a,
}
_INTERVAL = re.compile(r"^([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])$")


@dataclass(frozen=True)
class Bound:
    """A parsed range (see the module docstring); ``text`` is how messages state it."""

    text: str
    ordered: bool = False
    limit: int | str | None = None
    said: str | None = None  # how messages state the range instead of ``text``

    def __post_init__(self) -> None:
        self.holds(0)  # a malformed range fails at import, not at the first bad value

    def holds(self, v: float) -> bool:
        text = self.text.strip()
        if text.startswith("{"):
            return v in {float(x) for x in text.strip("{}").split(",")}
        match = _INTERVAL.match(text)
        if match:
            left, lo, hi, right = match.groups()
            above = float(lo) <= v if left == "[" else float(lo) < v
            return above and (v <= float(hi) if right == "]" else v < float(hi))
        op, _, number = text.partition(" ")
        if op not in _OPERATORS:
            raise ValueError(f"malformed bound {self.text!r}")
        return _OPERATORS[op](v, float(number))

    def expected(self, pair: bool, nullable: bool) -> str:
        """What a message says the value must be."""
        text = self.text.strip()
        if self.said is not None:
            return self.said + (" or null" if nullable else "")
        if text.startswith("{"):
            options = [x.strip() for x in text.strip("{}").split(",")]
        else:
            options = [f"in {text}" if text[0] in "[(" else text]
        if pair:
            each = options[0].removeprefix("in ")
            order = "[min, max] with min <= max" if self.ordered else "two numbers"
            options = [f"{order}, each {'in ' if text[0] in '[(' else ''}{each}"]
        options += ["null"] if nullable else []
        return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def bounded(
    default: Any,
    text: str,
    *,
    ordered: bool = False,
    limit: int | str | None = None,
    said: str | None = None,
) -> Any:
    """A dataclass field with ``default`` and the range ``text`` (see the module docstring);
    ``said``: the range as messages state it, where that reads better than ``text``."""
    bound = Bound(text, ordered=ordered, limit=limit, said=said)
    return dataclasses.field(default=default, metadata={BOUND: bound})


def _numbers(value: Any) -> tuple[Any, ...]:
    values = value if isinstance(value, tuple) else (value,)
    return tuple(v for v in values if isinstance(v, int | float) and not isinstance(v, bool))


def _limit(limit: int | str) -> tuple[int, str]:
    """(the largest value allowed, how a message says it)."""
    if limit == CPU_LIMIT:
        cpus = os.cpu_count() or 1
        return 4 * cpus, f"at most {4 * cpus} (4 x {cpus} CPUs)"
    return int(limit), f"<= {limit}"


def _fail(key: str, value: Any, expected: str) -> None:
    shown = list(value) if isinstance(value, tuple) else value
    raise ConfigError(f"{key} must be {expected}, got {shown!r}")


def check_value(key: str, value: Any, bound: Bound | None, nullable: bool) -> None:
    """`ConfigError` unless every number in ``value`` is finite, below 2**62 and in ``bound``."""
    numbers = _numbers(value)
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
        _fail(key, value, "a finite number")
    pair = isinstance(value, tuple)
    if bound is not None and not all(bound.holds(v) for v in numbers):
        _fail(key, value, bound.expected(pair, nullable))  # the field's own range first
    # Floats too: 1e308 epochs of warmup overflowed int() in the schedule, and a 1e308 s
    # timeout or learning rate is a typo, never a setting.
    if any(abs(v) >= MAX_INT for v in numbers):
        _fail(key, value, "smaller than 2**62 in magnitude")
    if bound is None or value is None:
        return
    if bound.ordered and list(numbers) != sorted(numbers):
        _fail(key, value, bound.expected(pair, nullable))
    if bound.limit is not None:
        top, said = _limit(bound.limit)
        if any(v > top for v in numbers):
            _fail(key, value, said + (" or null" if nullable else ""))


def check(section: Any, prefix: str, nullable: dict[str, bool]) -> None:
    """Check every field of the dataclass instance ``section`` against its declared bound.

    ``nullable[name]``: whether the field's type allows None (said in the message).
    """
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        check_value(f"{prefix}{f.name}", value, f.metadata.get(BOUND), nullable[f.name])
