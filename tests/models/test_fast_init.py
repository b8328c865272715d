"""lecun_normal_ on big tensors redraws only the values outside [-2, 2] (issue 18 item 7: a
fresh Mixer-B/16 took 12-22 s to build on a CPU, torch's trunc_normal_ redrawing whole
tensors); small tensors keep torch's draws, so seeded small recipes are unchanged."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlpmixer.models.init import _FAST_FROM, _TRUNCATED_STD, lecun_normal_


def test_big_tensors_get_exactly_the_truncated_lecun_normal():
    torch.manual_seed(0)
    weight = torch.empty(3072, 768)
    assert weight.numel() >= _FAST_FROM
    lecun_normal_(weight)
    std = math.sqrt(1 / 768) / _TRUNCATED_STD
    assert weight.abs().max().item() <= 2 * std * (1 + 1e-6)
    # truncated at 2 sigma and rescaled by flax's constant: variance 1/fan_in
    assert abs(weight.var().item() * 768 - 1) < 0.01
    # the shape of a truncated normal: P(|x| < sigma) / P(|x| < 2 sigma) = 0.6827 / 0.9545
    inside = (weight.abs() < std).double().mean().item()
    assert abs(inside - 0.682689 / 0.954500) < 0.002


def test_small_tensors_keep_torchs_draws():
    torch.manual_seed(1)
    ours = lecun_normal_(torch.empty(256, 64))
    torch.manual_seed(1)
    std = math.sqrt(1 / 64) / _TRUNCATED_STD
    reference = nn.init.trunc_normal_(torch.empty(256, 64), std=std, a=-2 * std, b=2 * std)
    assert torch.equal(ours, reference)
