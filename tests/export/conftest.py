"""Run this group's tests on one CPU thread: the models are tiny, and on a shared 2-core
machine (pytest -n 2) two OpenMP threads per worker make small ops several times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
