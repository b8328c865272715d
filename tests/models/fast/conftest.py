"""The tests here are about the fast layers: every model they build has them, whatever the
process default (``MLPMIXER_FAST=0`` in the environment builds plain models elsewhere)."""

from __future__ import annotations

import pytest

from mlpmixer.models import fast


@pytest.fixture(autouse=True)
def fast_layers():
    fast.set_fast_layers(True)
    yield
    fast.set_fast_layers(None)
