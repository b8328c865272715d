"""A small CNN: the contrast in the order-invariance study (the paper uses a ResNet).

Three stages of two conv3×3 -> BN -> ReLU layers (width, 2·width, 4·width channels) with a
2×2 max-pool between stages, global average pooling, a linear head. Its 3×3 kernels assume that neighbouring pixels belong together, which is
exactly what a pixel permutation destroys.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallCnn(nn.Module):
    """(B, in_chans, H, W) -> logits (B, num_classes); ``width`` channels in the first layer."""

    def __init__(self, in_chans: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv(in_chans, w), *_conv(w, w), nn.MaxPool2d(2),
            *_conv(w, 2 * w), *_conv(2 * w, 2 * w), nn.MaxPool2d(2),
            *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
