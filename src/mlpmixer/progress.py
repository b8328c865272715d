"""Progress of long work (bench phases, the trainings of a study, big loads) as log records.

The library never prints: it logs an INFO record marked with ``extra=PROGRESS`` on its
``mlpmixer.*`` logger. The CLI's log handler shows such records as ``... `` lines on stderr
when wanted (a terminal, or ``MLPMIXER_PROGRESS=1``); other INFO records (notices) always.
"""

from __future__ import annotations

import logging

PROGRESS = {"progress": True}  # ``log.info(..., extra=PROGRESS)``


def is_progress(record: logging.LogRecord) -> bool:
    """Whether ``record`` reports progress (rather than a notice the user must see)."""
    return bool(getattr(record, "progress", False))
