"""A deliberately minimal training loop for the analyses, on tensors held in memory.

AdamW with linear warm-up and cosine decay, gradient clipping at global norm 1 (the paper's
pre-training recipe in miniature), no augmentation. The batch order depends only on
``seed``, so two runs with the same seed see the same examples in the same order — the
order-invariance study relies on that.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RunError
from ..train.optim import lr_factor


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear from 0 to 1 over warm-up, then cosine to 0.

    The training schedule (`lr_factor`) over one step more: the cosine reaches 0 one step
    after the last, as in the runs the analyses' published numbers come from.
    """
    return functools.partial(
        lr_factor, total_steps=total_steps + 1, warmup_steps=warmup_steps, decay="cosine",
        end_factor=0.0,
    )  # fmt: skip


def steps_per_epoch(num_images: int, batch_size: int = 64) -> int:
    """Optimizer steps of one `fit` epoch (the last batch may be smaller)."""
    return math.ceil(num_images / batch_size)


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on (N, C, H, W) ``images`` (already normalised); mean loss per
    epoch. ``on_step(epoch)`` (1-based epoch) is called after every optimizer step (progress)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = epochs * steps_per_epoch(len(images), batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total, max(1, total // 20))
    )
    history = []
    model.train()
    for epoch in range(epochs):
        running = 0.0
        for batch in torch.randperm(len(images), generator=generator).split(batch_size):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            if not torch.isfinite(loss):
                raise RunError(f"the loss became {loss.item()} in epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            running += loss.item() * len(batch)
            if on_step is not None:
                on_step(epoch + 1)
        history.append(running / len(images))
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, K) in eval mode."""
    model.eval()
    return torch.cat([model(part) for part in images.split(batch_size)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict_logits(model, images).argmax(1) == labels).double().mean().item()
