"""The one evaluation loop: loss, top-1, top-k and (optionally) the confusion matrix over a
stream of batches. ``mlpmixer eval`` (`mlpmixer.evaluate.eval.evaluate`) and the training
run's evaluations (`mlpmixer.train.loop.Trainer.evaluate`) both count with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]
# (images, labels) as loaded -> (logits (B, K) float32, labels (B,) on the logits' device)
Forward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# (logits (B, K), labels (B,)) -> the batch's mean loss, a scalar tensor
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Scores:
    """``sums``: float64 (4,) of loss x n, top-1 hits, top-k hits, n, with k = min(5, K);
    ``confusion``: (K, K) int64 counts [true, predicted], when asked for."""

    sums: torch.Tensor
    confusion: torch.Tensor | None = None


@torch.no_grad()
def score_batches(
    forward: Forward,
    batches: Iterable[Batch],
    num_classes: int,
    loss: Loss,
    device: torch.device,
    confusion: bool = False,
) -> Scores:
    """Sum the scores of every batch; examples labelled -1 (the padding that gives every
    process the same number of batches) are left out. The sums live on ``device`` (the CPU
    for MPS, which has no float64)."""
    k = num_classes
    top_k = min(5, k)
    where = torch.device("cpu") if device.type == "mps" else device
    sums = torch.zeros(4, dtype=torch.float64, device=where)
    matrix = torch.zeros(k, k, dtype=torch.long) if confusion else None
    for images, labels in batches:
        logits, labels = forward(images, labels)
        if logits.shape[1] != k:
            raise ConfigError(
                f"the model predicts {logits.shape[1]} classes but the data set has {k}"
            )
        valid = labels >= 0
        logits, labels = logits[valid], labels[valid]
        mean_loss = loss(logits, labels) if len(labels) else logits.sum()
        top = logits.topk(top_k, dim=-1).indices
        hits = top == labels[:, None]
        sums += torch.stack(
            [mean_loss.double() * len(labels), hits[:, 0].sum().double(),
             hits.any(-1).sum().double(),
             torch.tensor(float(len(labels)), dtype=torch.float64, device=hits.device)]
        ).to(where)  # fmt: skip
        if matrix is not None:
            pairs = (labels * k + top[:, 0]).cpu()
            matrix += torch.bincount(pairs, minlength=k * k).view(k, k)
    return Scores(sums, matrix)
