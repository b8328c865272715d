"""A data set's items as two tensors, for code that needs them all at once (features,
calibration, the analyses). Lives with the data, not the evaluation, so `deploy` reads its
calibration images without depending on `evaluate` (which builds on `checkpoints`)."""

from __future__ import annotations

import logging

import torch

from ..progress import counted

log = logging.getLogger(__name__)


def dataset_tensors(
    dataset: torch.utils.data.Dataset,
    limit: int | None = None,
    batch_size: int = 512,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Items of a data set as (images (N, C, H, W), labels (N,)): all of them, or ``limit``.

    With ``limit``, the first items are taken, or a random sample when ``seed`` is given
    (splits of image folders are sorted by class, so their first items are one class).
    """
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if seed is None:
        indices = list(range(count))
    else:
        g = torch.Generator().manual_seed(seed)
        indices = sorted(torch.randperm(len(dataset), generator=g)[:count].tolist())
    subset = torch.utils.data.Subset(dataset, indices)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False)
    images, labels = [], []
    for x, y in counted(loader, log, f"reading {count} images"):
        images.append(x)
        labels.append(torch.as_tensor(y))
    if not images:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(images), torch.cat(labels).long()
