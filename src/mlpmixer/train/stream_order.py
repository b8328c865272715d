"""Shard runs: which order their epochs were read in, recorded so that a resume can say so.

Since the global batches of a shard run no longer depend on the number of processes
(`mlpmixer.data.shards.GlobalBatchStream`), a run stopped in the middle of an epoch resumes
on any number and continues the same sample sequence. ``RUN/data_order.json`` records the
order's definition (``"order": "global-batches"``, the lane count) and the number of processes
of the last start. A run written by an older mlpmixer, whose order was cut into one part per
process, is resumed with a warning when it stopped mid-epoch: the rest of that epoch follows
the new order (some samples of it may be seen twice or not at all); later epochs are exact.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..data.shards import LANES
from ..fileio import atomic_write_json
from .sampler import StreamBatchPlan

log = logging.getLogger(__name__)

ORDER_FILE = "data_order.json"
ORDER = "global-batches"


def _recorded(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or damaged: nothing to compare with
    return data if isinstance(data, dict) else None


def bind_stream_order(
    plan: object, run_dir: Path, world_size: int, is_main: bool, epoch: int, step_in_epoch: int
) -> None:
    """Warn if a shard run resumed mid-epoch was read in an older order; record the current."""
    if not isinstance(plan, StreamBatchPlan):
        return
    recorded = _recorded(run_dir / ORDER_FILE)
    old = recorded is not None and (recorded.get("order"), recorded.get("lanes")) != (ORDER, LANES)
    if step_in_epoch and old and is_main:
        log.warning(
            "%s was started by an older mlpmixer that read shards in another order; the rest "
            "of epoch %d follows the current order (some of its samples may repeat or be "
            "missed), later epochs are exact",
            run_dir,
            epoch + 1,
        )
    if is_main:
        atomic_write_json(
            run_dir / ORDER_FILE, {"order": ORDER, "lanes": LANES, "world_size": world_size}
        )
