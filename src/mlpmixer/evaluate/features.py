"""Frozen pre-logit features of a Mixer: LayerNorm -> mean over tokens, (B, C) per batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ..models.base import MlpFamilyModel

Batch = tuple[torch.Tensor, torch.Tensor]  # images (B, in_chans, H, W), labels (B,)


def tensor_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> Iterator[Batch]:
    """Consecutive (images, labels) slices of ``batch_size`` (the last one may be smaller)."""
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


@torch.no_grad()
def extract_features(
    model: MlpFamilyModel, batches: Iterable[Batch], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-logit features (N, C) float32 on the CPU and labels (N,) for every batch.

    The model is put in eval mode (no dropout / stochastic depth) and left there.
    """
    model.eval().to(device)
    features, labels = [], []
    for images, targets in batches:
        tokens = model.forward_features(images.to(device, non_blocking=True))
        features.append(model.forward_head(tokens, pre_logits=True).float().cpu())
        labels.append(targets.cpu())
    if not features:
        return torch.empty(0, model.config.hidden_dim), torch.empty(0, dtype=torch.long)
    return torch.cat(features), torch.cat(labels).long()
