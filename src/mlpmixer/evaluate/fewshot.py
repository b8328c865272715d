"""Few-shot linear evaluation as in the paper: frozen features, closed-form ridge regression.

For n shots per class: draw n training images per class, fit ℓ2-regularised least squares
from (centred) features to one-vs-all targets in {-1, +1}, predict the class with the largest
output. The regulariser λ is chosen on a held-out split (other images of the training pool,
disjoint from the shots); accuracy is measured on the test set and averaged over seeds.

Shapes: n examples, d feature dimensions, K classes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..checkpoints import as_model
from ..errors import ConfigError, DataError
from ..models.base import MlpFamilyModel
from ..progress import counted
from .eval import load_eval_split, normalizer
from .features import extract_features

log = logging.getLogger(__name__)

DEFAULT_SHOTS = (1, 5, 10, 25)
# λ relative to features scaled to unit mean squared norm (see `_feature_scale`).
DEFAULT_L2_GRID = tuple(float(v) for v in 2.0 ** np.arange(-14, 7, 2))


def one_vs_all_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(n,) integer labels -> (n, K) float64 targets: +1 for the label's column, -1 elsewhere."""
    targets = -torch.ones(len(labels), num_classes, dtype=torch.float64)
    targets[torch.arange(len(labels)), labels.long()] = 1.0
    return targets


def ridge_fit(
    features: torch.Tensor, targets: torch.Tensor, l2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_W,b ||X W + b - Y||² + λ||W||² in closed form (float64): W (d, K), b (K,).

    The bias is not regularised: it is solved by centring X and Y. With fewer examples than
    dimensions the dual form W = Xcᵀ (Xc Xcᵀ + λI)⁻¹ Yc is solved (an n×n system), else the
    primal (XcᵀXc + λI)⁻¹ XcᵀYc (d×d); both are the same minimiser.
    """
    x = features.double()
    y = targets.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    n, d = xc.shape
    if n <= d:
        gram = xc @ xc.T + l2 * torch.eye(n, dtype=torch.float64)
        weights = xc.T @ torch.linalg.solve(gram, yc)
    else:
        cov = xc.T @ xc + l2 * torch.eye(d, dtype=torch.float64)
        weights = torch.linalg.solve(cov, xc.T @ yc)
    return weights, y_mean - x_mean @ weights


def ridge_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    l2: float,
) -> float:
    """Accuracy on (test_x, test_y) of the one-vs-all ridge classifier fit on the training pair."""
    weights, bias = ridge_fit(train_x, one_vs_all_targets(train_y, num_classes), l2)
    predicted = (test_x.double() @ weights + bias).argmax(1)
    return (predicted == test_y).double().mean().item()


def _feature_scale(features: torch.Tensor) -> float:
    """Root mean squared norm of the centred features: dividing by it makes λ scale-free."""
    centred = features.double() - features.double().mean(0)
    return max(centred.pow(2).sum(1).mean().sqrt().item(), 1e-12)


def sample_split(
    labels: torch.Tensor, shots: int, heldout: int, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``shots`` training and up to ``heldout`` disjoint held-out images per class."""
    train, val = [], []
    labels_np = labels.numpy()
    for k in range(num_classes):
        members = np.flatnonzero(labels_np == k)
        if len(members) < shots + 1:
            raise DataError(
                f"class {k} has {len(members)} training images; {shots}-shot evaluation with a "
                f"held-out split needs at least {shots + 1}"
            )
        members = rng.permutation(members)
        train.append(members[:shots])
        val.append(members[shots : shots + heldout])
    return np.concatenate(train), np.concatenate(val)


@dataclass
class ShotResult:
    """Accuracy for one number of shots, over seeds."""

    shots: int
    mean_accuracy: float
    std_accuracy: float
    accuracies: list[float]  # one per seed
    l2: list[float]  # the λ chosen on the held-out split, per seed


@dataclass
class FewShotResult:
    num_classes: int
    feature_dim: int
    num_train_pool: int
    num_test: int
    heldout_per_class: int
    l2_grid: list[float]
    seeds: list[int]
    results: list[ShotResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def accuracy(self, shots: int) -> float:
        """Mean accuracy for ``shots`` shots per class."""
        for r in self.results:
            if r.shots == shots:
                return r.mean_accuracy
        raise KeyError(shots)


def _choose_l2(
    x: torch.Tensor, y: torch.Tensor, train: np.ndarray, val: np.ndarray, k: int, grid: Sequence
) -> float:
    """The λ of ``grid`` with the best held-out accuracy (ties: the larger λ, the safer fit)."""
    scores = [ridge_accuracy(x[train], y[train], x[val], y[val], k, l2) for l2 in grid]
    best = max(scores)
    return max(l2 for l2, s in zip(grid, scores, strict=True) if s == best)


def fewshot_evaluate(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    shots: Sequence[int] = DEFAULT_SHOTS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    num_classes: int | None = None,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    heldout_per_class: int = 10,
) -> FewShotResult:
    """n-shot linear-probe accuracy for each n in ``shots``, averaged over ``seeds``.

    ``train_features`` (N, d) and ``train_labels`` (N,) are the pool the shots and the
    held-out split are drawn from; ``test_*`` are scored. Features are centred and scaled by
    one number computed on the pool, so the λ grid means the same for any backbone.
    """
    if not shots or min(shots) < 1:
        raise ConfigError(f"shots must be positive integers, got {list(shots)}")
    if not seeds:
        raise ConfigError("at least one seed is needed")
    if heldout_per_class < 1:
        raise ConfigError(f"heldout_per_class must be >= 1, got {heldout_per_class}")
    if len(train_features) == 0 or len(test_features) == 0:
        raise DataError("few-shot evaluation needs a non-empty training pool and test set")
    k = int(num_classes or int(max(train_labels.max(), test_labels.max())) + 1)
    scale = _feature_scale(train_features)
    x, x_test = train_features.double() / scale, test_features.double() / scale
    y, y_test = train_labels.long(), test_labels.long()
    out = FewShotResult(
        num_classes=k,
        feature_dim=x.shape[1],
        num_train_pool=len(x),
        num_test=len(x_test),
        heldout_per_class=heldout_per_class,
        l2_grid=list(l2_grid),
        seeds=list(seeds),
    )
    for n in shots:
        accuracies, chosen = [], []
        for seed in seeds:
            rng = np.random.default_rng([seed, n])
            train, val = sample_split(y, n, heldout_per_class, k, rng)
            l2 = _choose_l2(x, y, train, val, k, l2_grid)
            accuracies.append(ridge_accuracy(x[train], y[train], x_test, y_test, k, l2))
            chosen.append(l2)
        out.results.append(
            ShotResult(n, float(np.mean(accuracies)), float(np.std(accuracies)), accuracies, chosen)
        )
    return out


def fewshot_checkpoint(
    checkpoint: str | os.PathLike[str] | MlpFamilyModel,
    dataset: str | os.PathLike[str],
    shots: Sequence[int] = DEFAULT_SHOTS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    batch_size: int = 256,
    device: str = "cpu",
    num_workers: int = 0,
    **options: Any,
) -> FewShotResult:
    """`fewshot_evaluate` on a checkpoint's frozen features of a data set's train/test splits.

    Images are prepared with the checkpoint's preprocessing; ``options`` go to
    `fewshot_evaluate` (``l2_grid``, ``heldout_per_class``).
    """
    model = as_model(checkpoint)
    prep = normalizer(model.config.mean, model.config.std)
    features = {}
    for split in ("train", "test"):
        data, info = load_eval_split(model, dataset, split)
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        reading = counted(loader, log, f"features of the {split} images")
        batches = ((prep(images), labels) for images, labels in reading)
        features[split] = extract_features(model, batches, device)
    return fewshot_evaluate(
        *features["train"], *features["test"], shots, seeds, info.num_classes, **options
    )
