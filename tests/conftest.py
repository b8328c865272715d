"""Test-wide settings.

Under ``pytest -n N`` (the README's test command uses 2 workers on 2 cores), each worker runs
torch on one thread: N workers × torch's default of one thread per core would oversubscribe
the cores, and the tests' tiny models run several times slower that way.
"""

from __future__ import annotations

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# The fast path's pieces are on wherever they can run (no per-machine probe): the tests hold
# each piece to its plain twin. The tests about the decisions set their own policy.
os.environ.setdefault("MLPMIXER_PIECES", "on")
