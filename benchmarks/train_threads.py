"""How many CPU threads a training step wants, against its work.

On a machine with few cores shared with other work, a small model's step is a few short
parallel ops: with as many threads as cores, every op waits at its barrier for a thread the
OS has preempted, and the step gets slower, not faster. A big step has enough work per op for
the threads to pay. This measures where the switch lies: for models spanning the work per
step (forward FLOPs per image x batch), one training step (forward, cross-entropy, backward,
SGD) with 1 thread and with all the cores, in interleaved rounds of one process (the order
alternates), wall-clock medians. `mlpmixer.train.threads` holds the rule drawn from it.

    python benchmarks/train_threads.py --out benchmarks/results/train-threads-amd-epyc.json

Not a test: the numbers depend on the machine and on its load (recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mlpmixer.cpu_kind import this_cpu
from mlpmixer.models import create_model
from mlpmixer.models.flops import flops_per_image
from mlpmixer.train.data_defaults import NARROW

# (label, registered model, overrides, batch): from the digits recipe's model to Mixer-S/16
CASES = [
    ("digits recipe", "mixer_t2_8", {"img_size": 16, "patch_size": 4, **NARROW}, 64),
    ("folder default (narrow s4_32)", "mixer_s4_32", dict(NARROW), 16),
    ("narrow s4_32, batch 64", "mixer_s4_32", dict(NARROW), 64),
    ("mixer_t4_28", "mixer_t4_28", {}, 64),
    ("mixer_s4_32", "mixer_s4_32", {}, 64),
    ("mixer_s4_32, batch 128", "mixer_s4_32", {}, 128),
    ("mixer_s16_224, batch 8", "mixer_s16_224", {}, 8),
    ("mixer_s16_224, batch 32", "mixer_s16_224", {}, 32),
]


def _step_fn(name: str, overrides: dict, batch: int):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **overrides).train()
    cfg = model.config
    images = torch.randn(batch, cfg.in_chans, *cfg.img_size)
    labels = torch.randint(0, 10, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step, flops_per_image(cfg) * batch, sum(p.numel() for p in model.parameters())


def _time(step, threads: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def measure(step, cores: int, rounds: int, budget_s: float) -> dict:
    """Interleaved rounds of one step at 1 thread and at ``cores``; wall medians."""
    for threads in (1, cores):  # warm-up: first calls allocate and pick kernels
        _time(step, threads)
    times: dict[int, list[float]] = {1: [], cores: []}
    start = time.perf_counter()
    for r in range(rounds):
        for threads in (1, cores) if r % 2 == 0 else (cores, 1):
            times[threads].append(_time(step, threads))
        if time.perf_counter() - start > budget_s and r >= 2:
            break
    one, many = statistics.median(times[1]), statistics.median(times[cores])
    return {"rounds": len(times[1]), "s_1_thread": round(one, 5),
            f"s_{cores}_threads": round(many, 5), "speedup_of_more_threads": round(one / many, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--budget-s", type=float, default=40.0, help="per case, at most")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    load_before = os.getloadavg()[0]
    for label, name, overrides, batch in CASES:
        step, work, params = _step_fn(name, overrides, batch)
        row = {"case": label, "model": name, "overrides": overrides, "batch": batch,
               "params": params, "gflop_per_step": round(work / 1e9, 4),
               "load_1m": round(os.getloadavg()[0], 2), **measure(step, cores, args.rounds, args.budget_s)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {
        "what": "one training step (fwd + CE + bwd + SGD), 1 thread vs all cores, interleaved; "
        "gflop_per_step = forward FLOPs per image x batch; speedup > 1: more threads faster",
        "cpu": this_cpu().model, "cores": cores, "torch": torch.__version__,
        "python": platform.python_version(), "load_1m_at_start": round(load_before, 2),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "rows": rows,
    }  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
