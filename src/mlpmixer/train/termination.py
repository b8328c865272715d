"""SIGTERM during training: one line that says what is kept, then exit 143.

A scheduler (Slurm's time limit, ``docker stop``, ``kill``) ends a run with SIGTERM, and so
does torchrun when one of its processes died: it stops the others. Python's default ended
the process with exit 143 and no word, so nobody was told that the last checkpoint is
complete and how to go on, and under torchrun the documented ``lost rank(s) 1 of 2`` line
never came (torchrun's own ``ChildFailedError`` traceback was the only message).

`sigterm_raises` turns SIGTERM into `Terminated` in the training process (never in its
forked data-loading workers, which die as before); `sigterm_deferred` holds it back while a
checkpoint is written and recorded; `terminated_message` words it: under
torchrun it names the ranks whose process is gone (their pids are in the rendezvous store).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import Terminated


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside: SIGTERM raises `Terminated` in this process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def on_sigterm(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked DataLoader worker: end as SIGTERM always did
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_deferred() -> Iterator[None]:
    """While inside: a SIGTERM waits, and reaches the handler in place before on leaving.

    For work that must not be cut between its parts: a checkpoint written, and the trainer
    noting which step it holds (the SIGTERM line names it). Main thread only; elsewhere a
    no-op, as Python runs signal handlers in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            signal.raise_signal(signal.SIGTERM)  # the handler runs now: Terminated, or exit


def terminated_message(
    run_dir: Path | None, checkpoint: Path | None, saved_step: int | None, step: int | None
) -> str:
    """The line for a run ended by SIGTERM at global ``step`` (None: before training began).

    ``checkpoint``: the run's complete checkpoint (None: none was written), of global step
    ``saved_step`` where known. Under torchrun, the ranks whose process died are named as lost.
    """
    lost = _lost_ranks()
    what = "terminated (SIGTERM)"
    if lost:
        what = f"lost {lost}: the process ended or was killed; torchrun then stopped this one"
    where = f" at global step {step}" if step is not None else " before training began"
    if checkpoint is not None:
        at = f" (global step {saved_step})" if saved_step is not None else ""
        kept = (
            f"the last checkpoint {checkpoint}{at} is complete and kept; continue with: "
            f"mlpmixer train --resume {run_dir}"
        )
    else:
        kept = "no checkpoint had been written yet; run the command again to start over"
    return f"{_rank_prefix()}{what}{where}; {kept}"


def _rank_prefix() -> str:
    import torch.distributed as dist

    return f"rank {dist.get_rank()}: " if dist.is_initialized() else ""


def _lost_ranks() -> str | None:
    """``"rank(s) 1 of 2"`` for the ranks whose process died on this host; None without torchrun
    or when none did (a SIGTERM from a scheduler, not a lost peer)."""
    import torch.distributed as dist

    from .distributed import dead_ranks

    if not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    dead = dead_ranks()
    if not dead:
        return None
    return f"rank(s) {', '.join(map(str, dead))} of {dist.get_world_size()}"
