"""PNG figures of the analyses (matplotlib's object API: no pyplot state, no display needed)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..fileio import atomic_path
from .token_mixing import BlockUnits


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write ``fig`` as a PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def token_mixing_figure(
    blocks: Sequence[BlockUnits], max_units: int = 64, columns: int = 8, title: str = ""
) -> Figure:
    """Each block's first ``max_units`` sorted units as a grid of small images, blocks side by side.

    Pairs sit next to each other in a row (columns is even); each unit is drawn with its own
    symmetric colour scale (red positive, blue negative), since only its shape matters.
    """
    columns += columns % 2
    shown = [min(max_units, b.num_units) for b in blocks]
    rows = max(math.ceil(n / columns) for n in shown)
    fig = Figure(figsize=(2.6 * len(blocks) * columns / 8 + 0.4, 2.6 * rows / 8 + 0.9))
    outer = fig.add_gridspec(1, len(blocks), wspace=0.08)
    for panel, (block, n) in enumerate(zip(blocks, shown, strict=True)):
        inner = outer[panel].subgridspec(rows, columns, wspace=0.06, hspace=0.06)
        for k in range(rows * columns):
            ax = fig.add_subplot(inner[k // columns, k % columns])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(k < n)
            if k >= n:
                continue
            unit = block.images[k]
            limit = max(float(np.abs(unit).max()), 1e-12)
            ax.imshow(unit, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            if k == columns // 2 - 1:
                ax.set_title(
                    f"block {block.block + 1}  ({block.num_units} units, "
                    f"{block.grid[0]}x{block.grid[1]} patches)",
                    fontsize=9,
                    loc="center",
                    x=1.05,
                )
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def cka_figure(
    matrix: Sequence[Sequence[float]],
    labels_a: Sequence[str],
    labels_b: Sequence[str],
    name_a: str = "",
    name_b: str = "",
    title: str = "Linear CKA",
) -> Figure:
    """Heatmap of CKA values in [0, 1]; cells are annotated when the matrix is small."""
    values = np.asarray(matrix, dtype=float)
    rows, cols = values.shape
    fig = Figure(figsize=(1.2 + 0.45 * cols, 1.0 + 0.4 * rows))
    ax = fig.add_subplot()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="magma", origin="lower")
    ax.set_xticks(range(cols), [_short(label) for label in labels_b], rotation=90, fontsize=8)
    ax.set_yticks(range(rows), [_short(label) for label in labels_a], fontsize=8)
    ax.set_xlabel(name_b or "layer", fontsize=9)
    ax.set_ylabel(name_a or "layer", fontsize=9)
    if rows <= 16 and cols <= 16:
        for i in range(rows):
            for j in range(cols):
                colour = "black" if values[i, j] > 0.6 else "white"
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color=colour)  # fmt: skip
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    return fig


def _short(label: str) -> str:
    return label.replace("block ", "b")
