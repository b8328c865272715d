"""The CPU thread count of a training run: ``train.threads`` when given, else measured.

On a machine with few cores shared with other work, torch's default (one thread per core)
makes a small model's step much slower: each of its short parallel ops waits at a barrier
for a thread the OS has preempted. benchmarks/train_threads.py measured a training step with
1 thread against 2 on a busy 2-core AMD EPYC (benchmarks/results/train-threads-amd-epyc.json):
2 threads were 6.9x slower for the digits recipe's model (0.3 GFLOP per step), 5.2x for a
class folder's default model (153k parameters) and still 2.5x slower for Mixer-S/4 at batch 64
(39 GFLOP per step). Where the switch lies depends on the model's work per step and on how
busy the machine is, so no fixed rule holds: `choose_threads` measures it, a few
forward-backward passes of a copy of the model on a synthetic batch of the run's shape with 1
thread and with torch's default, interleaved, within `PROBE_BUDGET_S`, and keeps the faster.
The probe uses its own random numbers (the run's stay as they were), and the choice is
stored in the run's config, so ``--resume`` uses the same count (CPU results are exact only
for a fixed thread count).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

PROBE_BUDGET_S = 2.0  # more rounds while the timed ones took less than this
PROBE_ROUNDS = 3  # interleaved rounds at most, after one warm-up step of each count
CLEAR_RATIO = 2.0  # a round in which one count is this much faster decides: no more rounds


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count and why: set (``train.threads``), or measured (seconds per step)."""

    threads: int
    reason: str

    def describe(self) -> str:
        unit = "thread" if self.threads == 1 else "threads"
        return f"{self.threads} {unit} ({self.reason})"


def choose_threads(
    given: int | None, model: nn.Module, micro_batch: int, budget_s: float = PROBE_BUDGET_S
) -> ThreadChoice:
    """``given`` if set; else 1 or torch's default count, whichever runs a training step
    (forward and backward of ``model`` on ``micro_batch`` images) faster here and now.

    torch's default stands without a probe where there is nothing to choose (one core) or
    where the user chose it (``OMP_NUM_THREADS``)."""
    if given:
        return ThreadChoice(given, "train.threads")
    most = torch.get_num_threads()
    if most <= 1:
        return ThreadChoice(1, "one core")
    if os.environ.get("OMP_NUM_THREADS"):
        return ThreadChoice(most, "OMP_NUM_THREADS")
    seconds = _probe(model, micro_batch, (1, most), budget_s)
    best = min(seconds, key=lambda n: (seconds[n], n))  # a tie: fewer threads
    measured = ", ".join(f"{seconds[n]:.3f} s/step with {n}" for n in seconds)
    return ThreadChoice(best, f"measured: {measured}; set with --threads or train.threads")


def _probe(
    model: nn.Module, micro_batch: int, counts: tuple[int, ...], budget_s: float
) -> dict[int, float]:
    """Median wall seconds of a forward-backward pass of a copy of ``model`` per thread count.

    The copy is in eval mode (no dropout: it would draw from the run's random numbers) and
    its inputs come from a generator of its own; the global RNG is forked besides."""
    before = torch.get_num_threads()
    probe = copy.deepcopy(model).eval()
    cfg = probe.config  # type: ignore[attr-defined]
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(max(1, micro_batch), cfg.in_chans, *cfg.img_size, generator=generator)

    def step(threads: int) -> float:
        torch.set_num_threads(threads)
        start = time.perf_counter()
        probe.zero_grad(set_to_none=True)
        probe(images).float().mean().backward()
        return time.perf_counter() - start

    times: dict[int, list[float]] = {n: [] for n in counts}
    try:
        with torch.random.fork_rng(devices=[]):
            for n in counts:  # warm-up: first calls allocate, pick and measure kernels
                step(n)
            start = time.perf_counter()
            for r in range(PROBE_ROUNDS):  # the first round always; more within the budget
                if r and (time.perf_counter() - start > budget_s or _clear(times)):
                    break
                for n in counts if r % 2 == 0 else reversed(counts):
                    times[n].append(step(n))
    finally:
        torch.set_num_threads(before)
    return {n: statistics.median(times[n]) for n in counts}


def _clear(times: dict[int, list[float]]) -> bool:
    """Whether the last round already decided: one count ``CLEAR_RATIO`` times faster."""
    last = [t[-1] for t in times.values()]
    return max(last) >= CLEAR_RATIO * min(last)
