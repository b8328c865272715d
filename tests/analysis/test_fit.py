"""The analyses' learning-rate schedule, written out independently of `lr_factor`."""

from __future__ import annotations

import math

import pytest

from mlpmixer.analysis.fit import cosine_with_warmup


@pytest.mark.parametrize(("total", "warmup"), [(1, 1), (10, 1), (40, 2), (41, 40)])
def test_cosine_with_warmup_rises_linearly_then_falls_to_zero_after_the_last_step(total, warmup):
    factor = cosine_with_warmup(total, warmup)
    for step in range(total + 2):
        if step < warmup:
            expected = (step + 1) / warmup
        else:
            progress = min((step - warmup) / max(1, total - warmup), 1.0)
            expected = 0.5 * (1.0 + math.cos(math.pi * progress))
        assert factor(step) == pytest.approx(expected, abs=1e-12)
