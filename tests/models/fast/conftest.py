"""The tests here are about the fast layers: every model they build has them, whatever the
process default (``MLPMIXER_FAST=0`` in the environment builds plain models elsewhere), and
each test starts with no piece decided (tests/conftest.py: every available piece on)."""

from __future__ import annotations

import pytest

from mlpmixer import measured_choice
from mlpmixer.models import fast
from mlpmixer.models.fast import pieces


@pytest.fixture(autouse=True)
def fast_layers():
    """Fast layers, and the pieces decided afresh for each test (tests switch them)."""
    fast.set_fast_layers(True)
    pieces.set_policy(None)
    yield
    fast.set_fast_layers(None)
    pieces.set_policy(None)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh decision cache in ``tmp_path`` (no probe result of another test is reused)."""
    monkeypatch.setenv("MLPMIXER_CACHE", str(tmp_path))
    measured_choice._memo.clear()
    yield tmp_path
    measured_choice._memo.clear()


@pytest.fixture
def decide_on(monkeypatch):
    """``decide_on(kind, ms=None)``: decide pieces as on the CPU ``kind``; probes "measure"
    ``ms`` (milliseconds by candidate, 1.0 if not given). Returns the list of the candidate
    lists the probes timed."""

    def on(kind, ms=None):
        monkeypatch.setattr(pieces, "effective_cpu", lambda: kind)
        pieces.set_policy("auto")
        seen = []

        def medians(candidates, rounds=5, clock=None, warmup=True):
            seen.append(list(candidates))
            return {name: (ms or {}).get(name, 1.0) for name in candidates}

        monkeypatch.setattr(measured_choice, "medians", medians)
        return seen

    return on
