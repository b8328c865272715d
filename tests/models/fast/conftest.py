"""The tests here are about the fast layers: every model they build has them, whatever the
process default (``MLPMIXER_FAST=0`` in the environment builds plain models elsewhere), and
each test starts with no piece decided (tests/conftest.py: every available piece on)."""

from __future__ import annotations

import pytest

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
