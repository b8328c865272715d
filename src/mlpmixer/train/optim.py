"""Optimizers and learning-rate schedules of the paper's recipes.

Pre-training: Adam(W) with β = (0.9, 0.999), linear warmup, then linear or cosine decay,
global-norm clipping. Fine-tuning: SGD with momentum 0.9, warmup + cosine, clipping, no
weight decay. Norm and bias parameters never get weight decay (`mlpmixer.models.params`).

Weight decay conventions: torch's AdamW subtracts ``lr · wd · w`` each step, so the paper's
"Adam, weight decay 0.1, lr 1e-3" is ``adamw`` with ``weight_decay: 0.1`` (big_vision writes
the same thing as a decoupled decay of 1e-4 that follows the schedule).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import nn

from ..models.params import layer_decay_groups, weight_decay_groups
from .config import OptimSection, ScheduleSection

log = logging.getLogger(__name__)


def build_optimizer(
    model: nn.Module, cfg: OptimSection, layer_decay: float | None = None
) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` over ``model``'s parameters (no decay on norms and biases).

    ``layer_decay`` (fine-tuning): each layer's peak LR is ``lr · layer_decay^(L - layer)``
    by the model's ``group_matcher`` (head 1, stem smallest); the schedule scales every
    group from its own peak.
    """
    if layer_decay is not None and layer_decay != 1.0:
        groups = layer_decay_groups(model, cfg.weight_decay, cfg.lr, layer_decay)
    else:
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


MAX_WARMUP_SHARE = 0.2  # a warmup longer than this share of the run is scaled down ...
SHORT_WARMUP_SHARE = 0.05  # ... to this share: the fine-tuning recipe's 500 of 10k steps


def warmup_steps(cfg: ScheduleSection, total_steps: int, steps_per_epoch: int) -> int:
    """The warmup of a run of ``total_steps``: the configured one, scaled down (with a logged
    notice) when it would take more than `MAX_WARMUP_SHARE` of the run.

    A recipe's warmup is sized for its own length (the fine-tuning recipe: 500 of 10k steps);
    in a 200-step fine-tune it would take the whole run and leave no time to decay.
    """
    warmup = cfg.warmup_steps or round(cfg.warmup_epochs * steps_per_epoch)
    if cfg.scale_warmup and warmup > MAX_WARMUP_SHARE * total_steps:
        scaled = max(1, round(SHORT_WARMUP_SHARE * total_steps))
        log.warning(
            "the schedule's %d warmup steps are more than %d%% of this %d-step run: warming "
            "up for %d steps (%d%%) instead (schedule.scale_warmup=false keeps %d)",
            warmup, 100 * MAX_WARMUP_SHARE, total_steps, scaled, 100 * SHORT_WARMUP_SHARE, warmup,
        )  # fmt: skip
        warmup = scaled
    return min(warmup, max(total_steps - 1, 0))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: ScheduleSection,
    peak_lr: float,
    total_steps: int,
    steps_per_epoch: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step `LambdaLR` for ``cfg`` (call ``.step()`` after each optimizer step)."""
    warmup = warmup_steps(cfg, total_steps, steps_per_epoch)
    end = cfg.end_lr / peak_lr

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup, cfg.name, end)

    schedule: Callable[[int], float] = factor
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
