"""The analyses from names on disk: checkpoints, data sets and image folders to JSON + PNG.

These are what the ``mlpmixer analyze`` commands call; each returns a JSON-ready dict and
writes ``<name>.json`` and ``<name>.png`` into ``out_dir``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoints.load import as_float_model
from ..data import build_dataset
from ..data.tensors import dataset_tensors
from ..errors import ConfigError, DataError
from ..evaluate.eval import normalizer
from ..evaluate.predict import collect_images, prepare_image
from ..fileio import atomic_write_json
from ..layout import checkpoint_label
from ..models.base import MlpFamilyModel
from ..models.registry import model_config
from .cka import cka_matrix
from .figures import cka_figure, order_study_figure, save_figure, token_mixing_figure
from .order_study import StudyInterrupted, StudyResult, order_invariance_study
from .permutation import VARIANTS, Permutations, study_patch
from .token_mixing import analyze_token_mixing, require_token_weight

log = logging.getLogger(__name__)
MIN_TEST_PER_CLASS = 10  # fewer test images per class: accuracies move in coarse steps


def token_mixing_run(
    checkpoint: str | os.PathLike[str] | MlpFamilyModel,
    out_dir: str | os.PathLike[str],
    blocks: Sequence[int] = (1, 2, 3),
    max_units: int = 32,
) -> dict[str, Any]:
    """Token-mixing units of ``blocks`` (1-based, clipped to the model's depth): tokens.json/png."""
    model = as_float_model(checkpoint, "analysed")
    require_token_weight(model, "analyze tokens")  # before reading blocks: the zoo has stages
    depth = len(model.blocks)
    wanted = [b for b in blocks if 1 <= b <= depth] or [1]
    if any(b < 1 for b in blocks):
        raise ConfigError(f"blocks are numbered from 1 (to {depth}), got {list(blocks)}")
    analysed = analyze_token_mixing(model, [b - 1 for b in wanted])
    out = Path(out_dir)
    fig = token_mixing_figure(analysed, max_units=max_units, title=_title(checkpoint))
    save_figure(fig, out / "tokens.png")
    result = {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, MlpFamilyModel) else None,
        "blocks": [b.summary() for b in analysed],
        "png": str(out / "tokens.png"),
    }
    atomic_write_json(out / "tokens.json", result)
    return result


def _title(checkpoint: Any) -> str:
    """A short name for figures: the file name, or RUN/model for a training run's model dir."""
    return "" if isinstance(checkpoint, MlpFamilyModel) else checkpoint_label(checkpoint)


def _short_name(label: str) -> str:
    """A checkpoint label short enough for an axis: the run's or file's name, at most 24 chars
    (``runs/mnist5k-mixer/model`` -> ``mnist5k-mixer``)."""
    parts = [p for p in label.replace("\\", "/").split("/") if p and p not in ("model", ".")]
    name = parts[-1] if parts else label
    return name if len(name) <= 24 else name[:11] + "…" + name[-12:]


def cka_images(
    model: MlpFamilyModel,
    dataset: str | None = None,
    images_dir: Sequence[str] | None = None,
    num_images: int = 256,
    split: str = "test",
) -> torch.Tensor:
    """``num_images`` normalised images for ``model``, from a data set split or image files."""
    prep = normalizer(model.config.mean, model.config.std)
    cfg = model.config
    if images_dir:
        files, _ = collect_images(images_dir)
        tensors = []
        for path in files:
            if len(tensors) == num_images:
                break
            with contextlib.suppress(DataError):  # CKA needs many images, not every file
                tensors.append(prepare_image(path, cfg))
        if len(tensors) < 2:
            raise ConfigError(f"need at least 2 readable images in {list(images_dir)}")
        return prep(torch.stack(tensors))
    if dataset is None:
        raise ConfigError("give a data set (--dataset) or image files (--images)")
    data, _ = build_dataset(
        dataset, split, cfg.img_size, cfg.in_chans,
        crop_pct=cfg.crop_pct, interpolation=cfg.interpolation,
    )  # fmt: skip
    images, _ = dataset_tensors(data, limit=num_images, seed=0)
    return prep(images)


def cka_run(
    checkpoint: str | os.PathLike[str] | MlpFamilyModel,
    out_dir: str | os.PathLike[str],
    dataset: str | None = None,
    images_dir: Sequence[str] | None = None,
    checkpoint_b: str | os.PathLike[str] | MlpFamilyModel | None = None,
    num_images: int = 256,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Linear CKA between all layers (of one checkpoint, or across two): cka.json/png.

    The forward passes run on ``device``; the Gram matrices are formed on the CPU."""
    model_a = as_float_model(checkpoint, "analysed").to(device)
    model_b = None if checkpoint_b is None else as_float_model(checkpoint_b, "analysed").to(device)
    images = cka_images(model_a, dataset, images_dir, num_images)
    result = cka_matrix(model_a, images, model_b, batch_size)
    out = Path(out_dir)
    name_a = _title(checkpoint) or "model A"
    name_b = name_a if checkpoint_b is None else (_title(checkpoint_b) or "model B")
    short_a, short_b = _short_name(name_a), _short_name(name_b)
    source = f"{dataset} test" if dataset else "image files"
    across = "" if checkpoint_b is None else f": {short_a} vs {short_b}"
    fig = cka_figure(result.cka, result.layers_a, result.layers_b, short_a, short_b,
                     title=f"Linear CKA{across}, {result.num_images} {source} images")  # fmt: skip
    save_figure(fig, out / "cka.png")
    data = {"checkpoint_a": name_a, "checkpoint_b": name_b, **result.to_dict()}
    data["png"] = str(out / "cka.png")
    atomic_write_json(out / "cka.json", data)
    return data


def _normalised_split(
    dataset: str, split: str, model_name: str, overrides: dict, limit: int | None = None
) -> Any:
    config = model_config(model_name, **overrides)
    data, info = build_dataset(dataset, split, config.img_size, config.in_chans)
    images, labels = dataset_tensors(data, limit=limit, seed=None if limit is None else 0)
    return normalizer(info.mean, info.std)(images), labels, info, config


def permutation_run(
    dataset: str,
    out_dir: str | os.PathLike[str],
    model: str = "mixer_t2_8",
    model_overrides: dict[str, Any] | None = None,
    limit: int | None = None,
    **study_options: Any,
) -> dict[str, Any]:
    """The order-invariance study on ``dataset`` with a fresh ``model``: permutation.json/png.

    The model's config gets the data set's channels, classes and statistics. ``limit`` caps
    the number of training and test images (a random sample), for quick runs.
    """
    overrides = dict(model_overrides or {})
    train_x, train_y, info, config = _normalised_split(dataset, "train", model, overrides, limit)
    test_x, test_y, _, _ = _normalised_split(dataset, "test", model, overrides, limit)
    if len(test_x) < MIN_TEST_PER_CLASS * info.num_classes:
        log.warning(
            "only %d test image(s) for %d classes: each is worth %.1f%% of an accuracy, so "
            "the numbers are coarse (use --limit %d or more, or no --limit)",
            len(test_x), info.num_classes, 100 / len(test_x),
            MIN_TEST_PER_CLASS * info.num_classes,
        )  # fmt: skip
    config = config.replace(**info.model_fields())
    try:
        result = order_invariance_study(
            (train_x, train_y), (test_x, test_y), config, **study_options
        )
    except StudyInterrupted as stop:  # Ctrl-C: keep the trainings that finished
        data = _permutation_outputs(stop.partial, info, config, model, test_x, out_dir)
        log.warning(
            "stopped: the %d finished training(s) are in %s (partial)",
            sum(len(v) for v in stop.partial.accuracy.values()), data["json"],
        )  # fmt: skip
        raise
    return _permutation_outputs(result, info, config, model, test_x, out_dir)


def _permutation_outputs(
    result: StudyResult, info: Any, config: Any, model: str, test_x: torch.Tensor,
    out_dir: str | os.PathLike[str],
) -> dict[str, Any]:  # fmt: skip
    """permutation.png and permutation.json of a study (``partial: true`` if it stopped)."""
    patch = study_patch(config)
    perms = Permutations.random(config.img_size, patch, result.settings["seed"])
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (info.mean, info.std))
    pictures = [_picture(perms.apply(test_x[:1] * std + mean, v)[0]) for v in VARIANTS]
    out = Path(out_dir)
    stopped = "" if result.complete else ", stopped early"
    fig = order_study_figure(
        result.accuracy, pictures, VARIANTS,
        title=f"{info.name}: fixed pixel permutations, {patch[0]}x{patch[1]} patches "
        f"({result.settings['epochs']} epochs, "
        f"{result.num_train} training images{stopped})",
    )  # fmt: skip
    save_figure(fig, out / "permutation.png")
    data = {"dataset": info.name, "model": model, "config": config.to_dict(), **result.to_dict()}
    data["partial"] = not result.complete
    data["png"], data["json"] = str(out / "permutation.png"), str(out / "permutation.json")
    atomic_write_json(out / "permutation.json", data)
    return data


def _picture(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) for imshow."""
    array = image.clamp(0, 1).permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array
