"""A quantized model against its float model on the same images: top-1 of each, the drop in
points, top-1 agreement and the largest logit difference."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Agreement:
    """``fp32_top1``/``int8_top1`` in [0, 1]; ``drop_points`` = 100 * (fp32 - int8) (positive:
    int8 is worse); ``agreement``: fraction of images with the same top-1 class;
    ``max_abs_dlogit``: max over images and classes of |logit_int8 - logit_fp32|."""

    images: int
    fp32_top1: float
    int8_top1: float
    drop_points: float
    agreement: float
    max_abs_dlogit: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``model``'s logits (N, K) for ``images`` (N, C, H, W), in batches."""
    parts = [model(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(parts).float()


def compare(
    float_model: nn.Module, quantized: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> Agreement:
    """``quantized`` against ``float_model`` on ``images`` (N, C, H, W) with ``labels`` (N,)."""
    ref = logits(float_model.eval(), images)
    out = logits(quantized.eval(), images)
    ref_top1 = (ref.argmax(1) == labels).float().mean().item()
    out_top1 = (out.argmax(1) == labels).float().mean().item()
    return Agreement(
        images=int(images.shape[0]),
        fp32_top1=ref_top1,
        int8_top1=out_top1,
        drop_points=100.0 * (ref_top1 - out_top1),
        agreement=(ref.argmax(1) == out.argmax(1)).float().mean().item(),
        max_abs_dlogit=(out - ref).abs().max().item(),
    )
