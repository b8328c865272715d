"""PNG figures of the analyses (matplotlib's object API: no pyplot state, no display needed)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..fileio import atomic_path
from .token_mixing import BlockUnits


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write ``fig`` as a PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def unit_mosaic(units: np.ndarray, columns: int) -> np.ndarray:
    """(U, gh, gw) units -> one 2-D image: a grid of ``columns`` units, each scaled to [-1, 1]
    by its own largest |weight|, upsampled to ~16 pixels a side, separated by NaN gaps
    (a wider gap between pairs)."""
    count, gh, gw = units.shape
    scale = max(1, 16 // max(gh, gw))
    rows = math.ceil(count / columns)
    th, tw = gh * scale, gw * scale
    gap, pair_gap = 1, 3
    col_x = [c * (tw + gap) + (c // 2) * (pair_gap - gap) for c in range(columns)]
    mosaic = np.full((rows * (th + gap) - gap, col_x[-1] + tw), np.nan)
    for k, unit in enumerate(units):
        r, c = divmod(k, columns)
        tile = np.kron(unit / max(float(np.abs(unit).max()), 1e-12), np.ones((scale, scale)))
        mosaic[r * (th + gap) : r * (th + gap) + th, col_x[c] : col_x[c] + tw] = tile
    return mosaic


def token_mixing_figure(
    blocks: Sequence[BlockUnits], max_units: int = 64, columns: int = 8, title: str = ""
) -> Figure:
    """Each block's first ``max_units`` sorted units as a grid of small images, blocks side by side.

    Pairs sit next to each other in a row (columns is even); each unit is drawn with its own
    symmetric colour scale (red positive, blue negative), since only its shape matters.
    """
    columns += columns % 2
    mosaics = [unit_mosaic(b.images[:max_units], columns) for b in blocks]
    height = max(m.shape[0] for m in mosaics)
    mosaics = [np.pad(m, ((0, height - len(m)), (0, 0)), constant_values=np.nan) for m in mosaics]
    inches = 3.6 / mosaics[0].shape[1]  # each panel about 3.6 inches wide
    fig = Figure(figsize=(len(blocks) * 3.8 + 0.8, height * inches + 0.6))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    axes = []
    image = None
    for k, (block, mosaic) in enumerate(zip(blocks, mosaics, strict=True)):
        ax = fig.add_subplot(1, len(blocks), k + 1)
        axes.append(ax)
        image = ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        shown = min(max_units, block.num_units)
        gh, gw = block.grid
        ax.set_title(f"block {block.block + 1}: {shown} of {block.num_units} units, {gh}x{gw} "
                     "patches", fontsize=9)  # fmt: skip
    if image is not None:  # one scale for all: each unit is divided by its largest |weight|
        bar = fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, ticks=[-1, -0.5, 0, 0.5, 1])
        bar.set_label("weight / largest |weight| of the unit", fontsize=8)
        bar.ax.tick_params(labelsize=7)
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
    fig = Figure(figsize=(2.0 + 0.6 * cols, 1.6 + 0.55 * rows))
    ax = fig.add_subplot()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="magma", origin="lower")
    ax.set_xticks(range(cols), [_short(label) for label in labels_b], fontsize=9)
    ax.set_yticks(range(rows), [_short(label) for label in labels_a], fontsize=9)
    ax.set_xlabel(f"layer of {name_b}" if name_b else "layer", fontsize=9)
    ax.set_ylabel(f"layer of {name_a}" if name_a else "layer", fontsize=9)
    if rows <= 16 and cols <= 16:
        size = 9 if max(rows, cols) <= 8 else 7
        for i in range(rows):
            for j in range(cols):
                colour = "black" if values[i, j] > 0.6 else "white"
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=size,
                        color=colour)  # fmt: skip
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    return fig


def _short(label: str) -> str:
    return label.replace("block ", "b")


def order_study_figure(
    accuracy: dict[str, dict[str, float]],
    examples: Sequence[np.ndarray],
    variants: Sequence[str],
    title: str = "",
) -> Figure:
    """Left: one test image in each variant; right: test top-1 per model and variant."""
    fig = Figure(figsize=(9.0, 3.0))
    grid = fig.add_gridspec(1, len(variants) + 2, width_ratios=[1] * len(variants) + [0.25, 3])
    for k, (image, variant) in enumerate(zip(examples, variants, strict=True)):
        ax = fig.add_subplot(grid[k])
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        ax.set_title(variant, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[-1])
    names = list(accuracy)
    width = 0.8 / max(len(names), 1)
    colours = {"mixer": "#c44e52", "cnn": "#4c72b0"}
    for m, name in enumerate(names):
        done = [k for k, v in enumerate(variants) if v in accuracy[name]]  # a stopped study
        values = [100 * accuracy[name][variants[k]] for k in done]
        xs = np.asarray(done) + (m - (len(names) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=_model_label(name), color=colours.get(name))
        for bar, value in zip(bars, values, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, value + 1, f"{value:.1f}",
                    ha="center", va="bottom", fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(variants)), list(variants), fontsize=9)
    ax.set_ylim(0.0, 108)  # from 0: the bars' heights compare honestly; room for the labels
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("test top-1 (%)", fontsize=9)
    # beside the axes, never over the bars and their labels
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _model_label(name: str) -> str:
    return {"mixer": "Mixer", "cnn": "CNN"}.get(name, name)
