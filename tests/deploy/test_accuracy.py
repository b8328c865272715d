"""`deploy.accuracy.compare`: the numbers of the int8 accuracy tables, checked against the
same quantities computed by hand on two fixed "models" (linear maps with known logits)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlpmixer.deploy.accuracy import compare


class Fixed(nn.Module):
    """Returns a fixed logit table row by image index (the image's first pixel)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.table[images[:, 0, 0, 0].long()]


REF = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 4.0], [2.0, 2.5, 0.0]])
OUT = torch.tensor([[2.5, 1.0, 0.0], [0.0, 2.0, 2.5], [1.0, 0.0, 4.0], [2.0, 2.5, 0.5]])
IMAGES = torch.arange(4.0).view(4, 1, 1, 1)


def test_labelled():
    labels = torch.tensor([0, 1, 2, 0])  # fp32 right on 3, int8 on 2 (image 1 flips)
    a = compare(Fixed(REF), Fixed(OUT), IMAGES, labels)
    assert (a.images, a.fp32_top1, a.int8_top1) == (4, 0.75, 0.5)
    assert a.drop_points == pytest.approx(25.0)
    assert a.agreement == 0.75
    assert a.max_abs_dlogit == pytest.approx(1.5)
    assert a.mean_abs_dlogit == pytest.approx((0.5 + 1.5 + 0.5) / 12)
    assert a.fp32_logit_std == pytest.approx(float(REF.flatten().std()))


def test_unlabelled_gives_agreement_only():
    a = compare(Fixed(REF), Fixed(OUT), IMAGES)
    assert (a.fp32_top1, a.int8_top1, a.drop_points) == (None, None, None)
    assert a.agreement == 0.75
    again = compare(Fixed(REF), Fixed(OUT), IMAGES, reference=REF)
    assert again == a
