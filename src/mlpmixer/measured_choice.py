"""Choosing between equivalent implementations by a short measurement at first use, cached.

Where no rule about the kind of CPU is known to hold (`mlpmixer.cpu_kind` has the ones that
are), a fast-path piece can be measured against its plain twin on the machine itself: both
compute the same numbers (their tests say so), so picking the faster one changes only time.
`choose` times each candidate on the real shapes, a few interleaved rounds of thread CPU
time (other processes on a shared machine barely move it), keeps the fastest, and writes the
choice to ``$MLPMIXER_CACHE/choices.json`` under a key of the question, the CPU's flags, the
torch version and the thread count, so the next process reads it instead of measuring. The
file is written atomically; an unreadable one is measured over, never trusted. `measure`
also keeps how much faster the choice was than the last candidate (the plain one): the
fast path reports it (`mlpmixer info --fast`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch's operations on the calling thread alone for the block: `time.thread_time` (the
    clock here) counts the calling thread only, so work spread over other threads would be
    missed. (torch is imported here only: this module itself needs none.)"""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def medians(
    candidates: Mapping[str, Callable[[], object]],
    rounds: int = 5,
    clock: Callable[[], float] = time.thread_time,
    warmup: bool = True,
) -> dict[str, float]:
    """Each candidate's median time over ``rounds`` interleaved rounds (after one warm-up
    call each, unless the caller has just run them; the order alternates, so that neither
    always runs on a warm cache)."""
    for fn in candidates.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = clock()
            candidates[name]()
            times[name].append(clock() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def fastest(
    candidates: Mapping[str, Callable[[], object]],
    rounds: int = 5,
    clock: Callable[[], float] = time.thread_time,
) -> str:
    """The name of the candidate with the lowest median time over ``rounds`` interleaved
    rounds (after one warm-up call each); ties go to the first listed."""
    return _pick(medians(candidates, rounds, clock))[0]


def _pick(median: dict[str, float], margin: float = 1.0) -> tuple[str, float]:
    """The fastest name (ties: the first) and the last one's time over its time; with a
    ``margin`` > 1, the last (plain) one unless another beats it by that factor."""
    names = list(median)
    best = min(names, key=lambda n: (median[n], names.index(n)))
    if median[names[-1]] < margin * median[best]:
        best = names[-1]
    return best, median[names[-1]] / max(median[best], 1e-12)


@dataclass(frozen=True)
class Measured:
    """A measured choice: the candidate's name, and the plain (last) candidate's time over the
    chosen one's (1.0 when the plain one was chosen: then `best_other` says by how much)."""

    choice: str
    speedup: float | None  # None: read from an older cache entry without it
    best_other: float | None = None  # plain ÷ the best fast candidate, when plain won


def measure(
    question: str,
    candidates: Mapping[str, Callable[[], object]],
    threads: int,
    torch_version: str,
    rounds: int = 5,
    clock: Callable[[], float] = time.thread_time,
    warmup: bool = True,
    margin: float = 1.0,
) -> Measured:
    """`choose` with the ratio kept: from memory, the cache file, or measured now. A fast
    candidate must beat the plain (last) one by ``margin`` to be chosen."""
    key = cache_key(question, threads, torch_version)
    stored = _read(cache_file()) if key not in _memo else {key: _memo[key]}
    found = _parse(stored.get(key), candidates)
    if found is not None:
        _memo[key] = stored[key]
        return found
    median = medians(candidates, rounds, clock, warmup)
    choice, speedup = _pick(median, margin)
    others = [median[n] for n in list(median)[:-1]]
    best_other = median[list(median)[-1]] / max(min(others), 1e-12) if others else None
    text = f"{choice}|{speedup:.4f}" + (f"|{best_other:.4f}" if best_other else "")
    _store(key, text)
    return Measured(choice, speedup, best_other)


def _parse(text: str | None, candidates: Mapping[str, object]) -> Measured | None:
    """A stored ``"name|speedup[|best_other]"`` (or an older bare name) for these candidates."""
    if not text:
        return None
    name, *numbers = text.split("|")
    if name not in candidates:
        return None
    try:
        values = [float(v) for v in numbers[:2]]
    except ValueError:
        return None
    return Measured(name, *[*values, None, None][:2])


def _store(key: str, text: str) -> None:
    _memo[key] = text
    path = cache_file()
    stored = _read(path)
    stored[key] = text
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(stored, indent=1, sort_keys=True) + "\n")
    except OSError as err:  # a read-only home: measure again next time, still correct
        log.info("measured choice not cached (%s): %s", path, err)


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
    found = _parse(_memo.get(key), candidates) or _parse(_read(cache_file()).get(key), candidates)
    if found is not None:
        _memo[key] = found.choice
        return found.choice
    choice = fastest(candidates, rounds)
    _store(key, choice)
    return choice
