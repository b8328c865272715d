"""Choosing between equivalent implementations by a short measurement at first use, cached.

Where no rule about the kind of CPU is known to hold (`mlpmixer.cpu_kind` has the ones that
are), a fast-path piece can be measured against its plain twin on the machine itself: both
compute the same numbers (their tests say so), so picking the faster one changes only time.
`choose` times each candidate on the real shapes, a few interleaved rounds of thread CPU
time (other processes on a shared machine barely move it), keeps the fastest, and writes the
choice to ``$MLPMIXER_CACHE/choices.json`` under a key of the question, the CPU's flags, the
torch version and the thread count, so the next process reads it instead of measuring. The
file is written atomically; an unreadable one is measured over, never trusted.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .cpu_kind import effective_cpu
from .fileio import atomic_write_text

log = logging.getLogger(__name__)
FILE = "choices.json"
_memo: dict[str, str] = {}


def cache_file() -> Path:
    root = os.environ.get("MLPMIXER_CACHE") or Path.home() / ".cache" / "mlpmixer"
    return Path(root) / FILE


def cache_key(question: str, threads: int, torch_version: str) -> str:
    """The question in the context whose answer it is: CPU flags, torch, threads."""
    return f"{question}|{effective_cpu().signature}|torch {torch_version}|{threads} threads"


def fastest(
    candidates: Mapping[str, Callable[[], object]],
    rounds: int = 5,
    clock: Callable[[], float] = time.thread_time,
) -> str:
    """The name of the candidate with the lowest median time over ``rounds`` interleaved
    rounds (after one warm-up call each); ties go to the first listed."""
    for fn in candidates.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = clock()
            candidates[name]()
            times[name].append(clock() - t0)
    return min(names, key=lambda n: (statistics.median(times[n]), names.index(n)))


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def choose(
    question: str,
    candidates: Mapping[str, Callable[[], object]],
    threads: int,
    torch_version: str,
    rounds: int = 5,
) -> str:
    """The faster candidate's name for ``question``: from this process's memory, the cache
    file, or measured now (and then stored in both)."""
    key = cache_key(question, threads, torch_version)
    if key in _memo and _memo[key] in candidates:
        return _memo[key]
    path = cache_file()
    stored = _read(path)
    choice = stored.get(key)
    if choice not in candidates:
        choice = fastest(candidates, rounds)
        stored[key] = choice
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(stored, indent=1, sort_keys=True) + "\n")
        except OSError as err:  # a read-only home: measure again next time, still correct
            log.info("measured choice not cached (%s): %s", path, err)
    _memo[key] = choice
    return choice
