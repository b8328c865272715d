"""The confusion matrix as a PNG (rows are true classes, columns predictions, rows sum to 1)
and its most frequent mistakes as a list: with hundreds of classes the picture has about a
pixel per class, and the list is what a reader can use."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..fileio import atomic_path

MAX_LABELLED = 40  # beyond this many classes, tick labels would overlap


def confusion_figure(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str = ""
) -> Figure:
    """Row-normalised confusion heatmap with class names; counts annotated for ≤ 20 classes."""
    counts = np.asarray(confusion, dtype=float)
    k = len(counts)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = min(max(3.5, 0.38 * k + 1.8), 14)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(rates, vmin=0, vmax=1, cmap="Blues", interpolation="nearest")
    if k <= MAX_LABELLED:
        ax.set_xticks(range(k), list(class_names), rotation=90, fontsize=8)
        ax.set_yticks(range(k), list(class_names), fontsize=8)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    colour = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                            fontsize=7, color=colour)  # fmt: skip
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def top_confused(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], k: int = 20
) -> list[dict[str, Any]]:
    """The ``k`` most frequent mistakes, most first: true class, predicted class, count and
    the share of the true class's images (ties by class order)."""
    counts = np.asarray(confusion, dtype=np.int64)
    totals = counts.sum(1)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), len(counts))
        if off[i, j] == 0:
            break
        pairs.append({
            "true": class_names[i], "predicted": class_names[j], "count": int(off[i, j]),
            "share_of_true_class": float(off[i, j] / max(totals[i], 1)),
        })  # fmt: skip
    return pairs


def confused_pairs_text(pairs: Sequence[dict[str, Any]]) -> str:
    """``pairs`` (`top_confused`) as lines: ``count  share  true -> predicted``."""
    lines = ["count  share  true -> predicted"]
    lines += [
        f"{p['count']:5d}  {100 * p['share_of_true_class']:4.1f}%  {p['true']} -> {p['predicted']}"
        for p in pairs
    ]
    return "\n".join(lines) + "\n"


def save_confusion_png(
    path: str | os.PathLike[str],
    confusion: Sequence[Sequence[int]],
    class_names: Sequence[str],
    title: str = "",
) -> None:
    fig = confusion_figure(confusion, class_names, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
