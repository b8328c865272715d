"""Resuming a finished run keeps summary.json whole (issue 18 item 7).

Before: ``train --resume RUN`` on a finished run trained no epoch, and rewrote summary.json
without ``train_loss`` and ``train_top1`` (they came only from the epoch just trained).
"""

from __future__ import annotations

import json

from mlpmixer.train import train


def test_resuming_a_finished_run_keeps_the_train_metrics(tmp_path, tiny):
    config = tiny(
        train={"epochs": 1, "batch_size": 64, "threads": 1}, run={"out": str(tmp_path / "r")}
    )
    first = train(config).summary
    assert "train_loss" in first and "train_top1" in first
    again = train(resume=tmp_path / "r").summary
    written = json.loads((tmp_path / "r" / "summary.json").read_text())
    for key in ("train_loss", "train_top1", "test_top1", "test_loss"):
        assert again[key] == first[key] == written[key], key
