"""Timing and memory measurement for benchmarks: synchronised step timing, summaries, peak memory.

Asynchronous devices are synchronised around every timed call, so a time is the time of the
work and not of its launch. Every step is timed on its own; summaries report the median (the
figure used for throughput) with the spread, so a noisy run (shared machine, clock changes)
shows as such instead of passing for a result.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fns: dict[str, Callable[[], Any]],
    device: torch.device | str,
    warmup: int = 2,
    repeats: int = 5,
    min_time_s: float = 2.0,
    max_repeats: int = 1000,
    cpu_times: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Seconds of each timed call of each function in ``fns``, after warm-up.

    With ``cpu_times`` (a dict), the process CPU seconds of each call are stored there too:
    with one thread, a time that other processes on the machine hardly disturb.

    Every function is warmed up with ``warmup`` calls (compilation, kernel selection, weight
    packing, allocator growth). The timed calls are interleaved, one call of each function in
    turn (alternating the order), so a change of machine load or clock during the run
    affects all of them alike and their ratio stays fair. At least ``repeats`` calls each and
    ``min_time_s`` seconds per function in total; at most ``max_repeats`` calls each.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or (
        time.perf_counter() - start < min_time_s * len(names) and rounds < max_repeats
    ):
        for name in names if rounds % 2 == 0 else reversed(names):
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - t0)
            if cpu_times is not None:
                cpu_times.setdefault(name, []).append(time.process_time() - c0)
        rounds += 1
    return times


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] of an ascending list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize_ms(times_s: list[float]) -> dict[str, float]:
    """Milliseconds: median, min, mean, p10, p90, p99, and spread = (p90 - p10) / median."""
    ms = sorted(t * 1e3 for t in times_s)
    median = statistics.median(ms)
    p10, p90 = percentile(ms, 10), percentile(ms, 90)
    return {
        "n": len(ms),
        "median": median,
        "min": ms[0],
        "mean": statistics.fmean(ms),
        "p10": p10,
        "p50": median,
        "p90": p90,
        "p99": percentile(ms, 99),
        "spread": (p90 - p10) / median if median > 0 else 0.0,
    }


def _rss_bytes() -> int | None:
    """Resident set size of this process, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _release_free_memory() -> None:
    """glibc's malloc_trim(0): hand free heap pages back to the OS (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _max_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Peak memory a block of code adds, in bytes: ``with PeakMemory(device) as m: ...; m.peak``.

    CUDA: the caching allocator's ``max_memory_allocated`` above the allocation at entry
    (exact). CPU: the resident set size, sampled every millisecond by a thread, above the
    RSS at entry, after asking glibc to return its free memory to the system (so that memory
    kept from earlier steps is counted again when it is reused); approximate, and a lower
    bound where the allocator cannot give memory back. ``source`` says which was used.
    """

    def __init__(self, device: torch.device | str, interval_s: float = 0.001) -> None:
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.peak = 0
        self.source = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.source = "cuda_max_memory_allocated"
            return self
        gc.collect()
        _release_free_memory()
        base = _rss_bytes()
        if base is None:  # no /proc: only the process-wide high-water mark is available
            self._base, self.source = _max_rss_bytes(), "ru_maxrss_delta"
            return self
        self._base, self._max_seen, self.source = base, base, "rss_sampled"
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes() or 0
            self._max_seen = max(self._max_seen, rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        elif self._thread is None:
            self.peak = max(0, _max_rss_bytes() - self._base)
        else:
            self._stop.set()
            self._thread.join()
            self._max_seen = max(self._max_seen, _rss_bytes() or 0)
            self.peak = max(0, self._max_seen - self._base)


def _storage_key(tensor: torch.Tensor) -> tuple[str, int]:
    return str(tensor.device), tensor.untyped_storage().data_ptr()


class SavedActivations:
    """Bytes of tensors autograd saves for backward inside the block (each storage once).

    That is the activation memory of a training step, the part that grows with the batch
    and that activation checkpointing removes; it is the same on every device. Tensors that
    share storage with ``exclude`` (the model's parameters) are not counted; copies of the
    weights made by autocast are (they are held until backward too).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self.bytes = 0
        self._seen = {_storage_key(t) for t in exclude}

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += tensor.untyped_storage().nbytes()
        return tensor

    def __enter__(self) -> SavedActivations:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
