"""DataLoader settings for the worker path: worker count, pinning, prefetch, epoch keys.

Image files are decoded, cropped and augmented in worker processes and travel as uint8
(B, C, H, W) batches (a quarter of float32's bytes), pinned when a CUDA device will receive
them; `mlpmixer.data.normalize` turns them into float on the device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Protocol

from torch.utils.data import Sampler

MAX_WORKERS = 32  # per process: beyond this, the per-process collation becomes the limit
PREFETCH_BATCHES = 4  # per worker


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which cgroup limits and taskset
    narrow), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(in_memory: bool, processes_per_node: int = 1) -> int:
    """Worker processes per training process: none for in-memory arrays (workers would only
    copy them), else this process's share of the CPUs minus one for itself, at most
    `MAX_WORKERS`. Override with ``data.num_workers``."""
    if in_memory:
        return 0
    share = available_cpus() // max(1, processes_per_node)
    return max(1, min(MAX_WORKERS, share - 1))


def loader_options(workers: int, cuda: bool) -> dict[str, Any]:
    """DataLoader keyword arguments: pinned memory for CUDA only, persistent workers and
    `PREFETCH_BATCHES` batches in flight per worker when there are workers."""
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": cuda}
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=PREFETCH_BATCHES)
    return options


class _EpochSampler(Protocol):
    epoch: int

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[list[int]]: ...


class EpochKeyedBatches(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` keys from a batch sampler with an ``epoch`` attribute.

    A data set seeding each sample by (seed, epoch, index) then draws the same augmentation
    whichever worker loads it and however many workers there are: resumed runs are exact.
    """

    def __init__(self, sampler: _EpochSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(epoch, index) for index in batch]
