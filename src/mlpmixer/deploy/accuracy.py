"""A quantized model against its float model on the same images: top-1 of each, the drop in
points, top-1 agreement and the logit differences (largest and mean, and the fp32 logits'
spread to read them against)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Agreement:
    """``fp32_top1``/``int8_top1`` in [0, 1]; ``drop_points`` = 100 * (fp32 - int8) (positive:
    int8 is worse); all three None for images without labels. ``agreement``: fraction of
    images with the same top-1 class; ``max_abs_dlogit``/``mean_abs_dlogit``: max and mean
    over images and classes of |logit_int8 - logit_fp32|; ``fp32_logit_std``: the standard
    deviation of all fp32 logits, the scale to read the differences against."""

    images: int
    fp32_top1: float | None
    int8_top1: float | None
    drop_points: float | None
    agreement: float
    max_abs_dlogit: float
    mean_abs_dlogit: float = 0.0
    fp32_logit_std: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``model``'s logits (N, K) for ``images`` (N, C, H, W), in batches."""
    parts = [model(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(parts).float()


def compare(
    float_model: nn.Module,
    quantized: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
) -> Agreement:
    """``quantized`` against ``float_model`` on ``images`` (N, C, H, W) with ``labels`` (N,)
    (None: agreement and logit differences only). ``reference``: ``float_model``'s logits on
    ``images`` if already computed."""
    ref = logits(float_model.eval(), images) if reference is None else reference
    out = logits(quantized.eval(), images)
    top1 = [None, None, None]
    if labels is not None:
        ref_top1 = (ref.argmax(1) == labels).float().mean().item()
        out_top1 = (out.argmax(1) == labels).float().mean().item()
        top1 = [ref_top1, out_top1, 100.0 * (ref_top1 - out_top1)]
    diff = (out - ref).abs()
    return Agreement(
        int(images.shape[0]),
        *top1,
        agreement=(ref.argmax(1) == out.argmax(1)).float().mean().item(),
        max_abs_dlogit=diff.max().item(),
        mean_abs_dlogit=diff.mean().item(),
        fp32_logit_std=ref.std().item(),
    )
