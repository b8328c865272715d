"""A CPU run's thread count is measured, printed and kept for resume (issue 27 item 8).

Before: a run without ``train.threads`` used torch's default, one thread per core. On a busy
2-core machine that made small models' steps several times slower (a class folder's 153k
parameters: 5.9 steps/min with 2 threads, 0.65 steps/s with 1; benchmarks/train_threads.py
measured 5.2x there), and the run's first line did not say how many threads it used.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch
import yaml

import mlpmixer
from mlpmixer.train import threads as threads_module
from mlpmixer.train import train
from mlpmixer.train.threads import choose_threads


def _model():
    return mlpmixer.create_model("mixer_t2_8", hidden_dim=16, tokens_mlp_dim=8,
                                 channels_mlp_dim=32, num_blocks=1)  # fmt: skip


def test_the_faster_count_wins_and_a_given_count_is_kept(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    busy = {1: 0.084, 2: 0.440}  # the folder model on the busy 2-core machine (per step)
    monkeypatch.setattr(threads_module, "_probe", lambda *a, **k: busy)
    choice = choose_threads(None, _model(), 16)
    assert choice.threads == 1
    assert choice.describe().startswith("1 thread (measured: 0.084 s/step with 1, 0.440 s/step")
    monkeypatch.setattr(threads_module, "_probe", lambda *a, **k: {1: 1.0, 2: 0.6})
    assert choose_threads(None, _model(), 16).threads == 2  # an idle machine, a big step
    assert choose_threads(3, _model(), 16).describe() == "3 threads (train.threads)"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads(None, _model(), 16).reason == "OMP_NUM_THREADS"


def test_the_probe_leaves_the_runs_random_numbers_model_and_threads_alone(monkeypatch):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: nothing to measure")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    outside = torch.get_num_threads()
    torch.set_num_threads(2)  # whatever an earlier test left: two counts to measure
    model = _model().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng, before = torch.get_rng_state(), torch.get_num_threads()
    choice = choose_threads(None, model, 8, budget_s=0.2)
    assert choice.threads in (1, before) and "s/step with 1" in choice.reason
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == before
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and model.training
    torch.set_num_threads(outside)


def test_a_run_prints_its_thread_count_and_stores_it_for_resume(
    tmp_path, tiny, monkeypatch, caplog
):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # as on the 2-core machine
    monkeypatch.setattr(threads_module, "_probe", lambda *a, **k: {1: 0.084, 2: 0.440})
    config = tiny(train={"threads": None, "epochs": 1}, run={"out": str(tmp_path / "run"),
                                                            "progress": "log"})  # fmt: skip
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        train(config)
    first = next(r.getMessage() for r in caplog.records if "training mixer_t2_8" in r.getMessage())
    assert "on cpu, 1 thread (measured: 0.084 s/step with 1, 0.440 s/step with 2;" in first
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["train"]["threads"] == 1  # --resume runs with the same count (exact)
