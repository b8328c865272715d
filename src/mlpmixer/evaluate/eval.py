"""Accuracy of a classifier on a labelled data set: top-1, top-5, per class, loss, confusion.

``evaluate(model, batches, class_names)`` consumes (images, labels) batches of images that
are already preprocessed; `evaluate_checkpoint` loads a checkpoint and a data set split and
prepares the images with the preprocessing stored in the checkpoint's config (resolution,
channels, crop, interpolation, mean and std), or the values given instead.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..checkpoints import as_model
from ..checkpoints.peek import peek_num_classes
from ..data import build_dataset
from ..data.build import find_source
from ..data.info import normalize
from ..data.outline import dataset_outline
from ..errors import ConfigError, DataError, RunError
from ..models.base import MlpFamilyModel
from ..progress import counted
from .scores import score_batches

log = logging.getLogger(__name__)
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class EvalResult:
    """What `evaluate` measured. Accuracies are fractions in [0, 1]; loss is the mean CE."""

    num_examples: int
    top1: float
    top5: float
    top5_k: int  # min(5, num_classes): "top-5" of a 3-class problem is top-3
    loss: float
    class_names: list[str]
    per_class_accuracy: list[float | None]  # None for a class without examples
    per_class_count: list[int]
    confusion: list[list[int]]  # confusion[true][predicted]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    class_names: Sequence[str],
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
) -> EvalResult:
    """Top-1/top-5 accuracy, mean cross-entropy and the confusion matrix over ``batches``.

    ``preprocess`` maps a batch (B, C, H, W) on ``device`` to the model's input (e.g.
    normalisation). Logits (B, K) must have one column per name in ``class_names``.
    """
    model.eval().to(device)
    device = torch.device(device)

    def forward(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = images.to(device), labels.to(device).long()
        return model(preprocess(images) if preprocess else images).float(), labels

    k = len(class_names)
    batches = counted(batches, log, "evaluating")
    scores = score_batches(forward, batches, k, F.cross_entropy, device, confusion=True)
    loss_sum, correct1, correct5, seen = scores.sums.tolist()
    confusion = scores.confusion
    assert confusion is not None
    if seen == 0:
        raise DataError("nothing to evaluate: the data set is empty")
    counts = confusion.sum(1)
    per_class = [
        (confusion[i, i].item() / counts[i].item()) if counts[i] > 0 else None for i in range(k)
    ]
    return EvalResult(
        num_examples=int(seen),
        top1=correct1 / seen,
        top5=correct5 / seen,
        top5_k=min(5, k),
        loss=loss_sum / seen,
        class_names=list(class_names),
        per_class_accuracy=per_class,
        per_class_count=counts.tolist(),
        confusion=confusion.tolist(),
    )


def _preview(names: Sequence[str]) -> str:
    shown = ", ".join(list(names)[:4])
    return f"({shown}{', ...' if len(names) > 4 else ''})"


def check_normalization(mean: Sequence[float], std: Sequence[float], channels: int) -> None:
    """Raise `ConfigError` unless mean/std are ``channels`` finite numbers with std > 0.

    A std of 0 or a nan mean makes every input nan: the evaluation would "succeed" with a
    nan loss.
    """
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels) or not all(math.isfinite(v) for v in values):
            count = "1 finite number" if channels == 1 else f"1 or {channels} finite numbers"
            raise ConfigError(f"{name} must be {count}, got {list(values)}")
    if not all(v > 0 for v in std):
        raise ConfigError(f"std must be > 0, got {list(std)}")


def normalizer(
    mean: Sequence[float], std: Sequence[float]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`mlpmixer.data.normalize` with ``mean`` and ``std`` bound: (B, C, H, W) in [0, 1] ->
    (x - mean) / std per channel."""
    return functools.partial(normalize, mean=tuple(mean), std=tuple(std))


def load_eval_split(
    model: MlpFamilyModel,
    dataset: str | os.PathLike[str],
    split: str = "test",
    **data_options: Any,
) -> tuple[torch.utils.data.Dataset, Any]:
    """The ``split`` of ``dataset`` at the model's resolution, channels, crop and interpolation."""
    cfg = model.config
    options = {
        "img_size": cfg.img_size,
        "in_chans": cfg.in_chans,
        "crop_pct": cfg.crop_pct,
        "interpolation": cfg.interpolation,
    }
    options.update({k: v for k, v in data_options.items() if v is not None})
    return build_dataset(dataset, split, **options)


def check_classes_early(
    checkpoint: str | os.PathLike[str], dataset: str | os.PathLike[str]
) -> None:
    """Before loading anything: an unknown data set, or a class count that differs from the
    checkpoint's (both read from names, configs and headers), is refused at once."""
    outline = dataset_outline(dataset)
    classes = peek_num_classes(checkpoint)
    if None not in (classes, outline.num_classes) and classes != outline.num_classes:
        raise ConfigError(
            f"the model has {classes} classes but {outline.name} has {outline.num_classes}; "
            "evaluate on a data set with the model's classes"
        )


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str] | MlpFamilyModel,
    dataset: str | os.PathLike[str],
    split: str = "test",
    batch_size: int = 256,
    num_workers: int = 0,
    device: str = "cpu",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **data_options: Any,
) -> tuple[EvalResult, MlpFamilyModel]:
    """Evaluate a checkpoint (any format `load_model` reads, or a model) on a data set split.

    ``mean``/``std`` and ``data_options`` (``crop_pct``, ``interpolation``, ``root``...)
    override what the checkpoint's config says.
    """
    if not isinstance(checkpoint, torch.nn.Module):  # a path: classes checked before loading
        check_classes_early(checkpoint, dataset)
    model = as_model(checkpoint)
    data, info = load_eval_split(model, dataset, split, **data_options)
    if model.config.num_classes != info.num_classes:
        raise ConfigError(
            f"the model has {model.config.num_classes} classes but {info.name} has "
            f"{info.num_classes}; evaluate on a data set with the model's classes"
        )
    names = model.config.class_names
    if names is not None and tuple(names) != tuple(info.class_names):
        warnings.warn(
            f"the model's class names {_preview(names)} differ from {info.name}'s "
            f"{_preview(info.class_names)}; labels are compared by index",
            stacklevel=2,
        )
    data = find_source(dataset).eval_view(data, None)  # image files: uint8, normalised later
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    mean, std = mean or model.config.mean, std or model.config.std
    check_normalization(mean, std, model.config.in_chans)
    result = evaluate(model, loader, info.class_names, normalizer(mean, std), device)
    if not math.isfinite(result.loss):  # never report a nan evaluation as a result
        raise RunError(
            f"the loss is {result.loss} on {info.name}: the model's outputs are not finite "
            "(NaN/inf weights, or a broken mean/std in its config)"
        )
    return result, model
