"""Optimizers and learning-rate schedules of the paper's recipes.

Pre-training: Adam(W) with β = (0.9, 0.999), linear warmup, then linear or cosine decay,
global-norm clipping. Fine-tuning: SGD with momentum 0.9, warmup + cosine, clipping, no
weight decay. Norm and bias parameters never get weight decay (`mlpmixer.models.params`).

Weight decay conventions: torch's AdamW subtracts ``lr · wd · w`` each step, so the paper's
"Adam, weight decay 0.1, lr 1e-3" is ``adamw`` with ``weight_decay: 0.1`` (big_vision writes
the same thing as a decoupled decay of 1e-4 that follows the schedule).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..models.params import weight_decay_groups
from .config import OptimSection, ScheduleSection


def build_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` over ``model``'s parameters (no decay on norms and biases)."""
    groups = weight_decay_groups(model, cfg.weight_decay)
    # foreach: one kernel per group instead of per tensor (torch's default only on GPUs);
    # on a CPU it halves the optimizer's share of a small model's step
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, foreach=True
        )
    optimizer = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return optimizer(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, foreach=True)


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, decay: str, end_factor: float
) -> float:
    """Learning rate of optimizer step ``step`` (0-based) as a fraction of the peak.

    Warmup rises linearly to 1 over ``warmup_steps`` (step 0 already gets 1/warmup); then
    ``linear`` or ``cosine`` decay reaches ``end_factor`` at the last step; ``constant`` stays.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    span = max(total_steps - warmup_steps - 1, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    shape = 1.0 - progress if decay == "linear" else cosine
    return end_factor + (1.0 - end_factor) * shape


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: ScheduleSection,
    peak_lr: float,
    total_steps: int,
    steps_per_epoch: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step `LambdaLR` for ``cfg`` (call ``.step()`` after each optimizer step)."""
    warmup = cfg.warmup_steps or round(cfg.warmup_epochs * steps_per_epoch)
    warmup = min(warmup, max(total_steps - 1, 0))
    end = cfg.end_lr / peak_lr

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup, cfg.name, end)

    schedule: Callable[[int], float] = factor
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
