"""Shard runs: the number of processes is part of the data order, so a mid-epoch resume needs it.

A `StreamBatchPlan` cuts each epoch into one contiguous part per process; resumed on another
number of processes in the middle of an epoch, the rest of that epoch would be cut
differently (some samples seen twice, some never). ``RUN/data_order.json`` records the number
the run trains with; `bind_stream_order` refuses such a resume with a message saying how many
to use, and records the new number otherwise (from an epoch boundary any number is exact).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.shards import LANES
from ..errors import ConfigError
from ..fileio import atomic_write_json
from .sampler import StreamBatchPlan

ORDER_FILE = "data_order.json"


def _recorded_processes(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["world_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: nothing to hold the resume to


def bind_stream_order(
    plan: object, run_dir: Path, world_size: int, is_main: bool, epoch: int, step_in_epoch: int
) -> None:
    """Check a resumed shard run's process count (mid-epoch), then record the current one."""
    if not isinstance(plan, StreamBatchPlan):
        return
    path = run_dir / ORDER_FILE
    recorded = _recorded_processes(path)
    if step_in_epoch and recorded is not None and recorded != world_size:
        raise ConfigError(
            f"{run_dir} stopped in the middle of epoch {epoch + 1} with {recorded} process(es), "
            f"and its shards are read in an order cut into one part per process: resume it "
            f"with {recorded} (torchrun --nproc_per_node {recorded} ...), not {world_size}"
        )
    if is_main:
        atomic_write_json(path, {"world_size": world_size, "lanes": LANES})
