"""Speed ratios against fp32, measured side by side: process CPU time, one thread, the
candidates interleaved round by round and the best round of each kept, so that a busy
machine slows them all alike and the ratios stay meaningful where the times do not."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch


def cpu_seconds(run: Callable[[], object], calls: int) -> float:
    """Process CPU seconds of ``calls`` calls of ``run`` (after one warm-up call)."""
    run()
    start = time.process_time()
    for _ in range(calls):
        run()
    return (time.process_time() - start) / calls


@torch.no_grad()
def best_times(
    models: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    images: torch.Tensor,
    rounds: int = 3,
    calls: int = 5,
) -> dict[str, float]:
    """Best per-call CPU seconds of each model on ``images``, over ``rounds`` interleaved
    rounds (round r times every model once before round r + 1 starts)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = {name: float("inf") for name in models}
        for _ in range(rounds):
            for name, model in models.items():
                seconds = cpu_seconds(lambda m=model: m(images), calls)
                best[name] = min(best[name], seconds)
        return best
    finally:
        torch.set_num_threads(threads)


def speedups(times: Mapping[str, float], baseline: str) -> dict[str, float]:
    """Each time as a speed-up over ``baseline`` (2.0: twice as fast; 0.5: twice as slow)."""
    return {name: times[baseline] / t for name, t in times.items()}
