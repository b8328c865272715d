"""Class predictions for image files, prepared as the checkpoint's config says.

Each file is decoded by PIL (JPEG, PNG, WebP, GIF, TIFF, BMP...; grayscale, palette, RGBA,
16-bit: see `mlpmixer.data.images`), converted to the model's channels, resized so the
shorter side is ``img_size / crop_pct`` with the configured interpolation, centre-cropped
to ``img_size`` and normalised with the config's mean and std: the evaluation preprocessing
(`mlpmixer.data.transforms.eval_sample`, uint8), so predict sees the pixels eval sees. Files are processed in
batches; a file that cannot be read is reported by name and the others are still predicted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.images import IMAGE_EXTENSIONS, not_a_file
from ..data.transforms import eval_sample
from ..errors import ConfigError, DataError, MixerError
from ..models.base import MlpFamilyModel
from ..models.config import MixerConfig
from ..progress import Ticker
from .eval import normalizer

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    path: str
    top: list[dict[str, Any]]  # [{"class": name, "index": i, "probability": p}, ...] best first


@dataclass
class PredictReport:
    predictions: list[Prediction] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)  # [{"path", "error"}]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect_images(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[dict]]:
    """Files to predict: given files as they are, directories searched recursively for images.

    Returns (files, failures); a path that does not exist, cannot be examined (e.g. a name
    too long for the file system), or a directory without images, is a failure naming it.
    A file reached twice (listed twice, or also inside a listed directory) is kept once.
    """
    files, failures, seen = [], [], set()
    for item in inputs:
        path = Path(item)
        try:
            found = _images_at(path)
        except OSError as err:  # one bad path must not stop the others
            failures.append({"path": str(path), "error": err.strerror or str(err)})
            continue
        if found is None:
            missing = "not a regular file" if path.exists() else "no such file or directory"
            failures.append({"path": str(path), "error": missing})
        elif not found:
            failures.append({"path": str(path), "error": "directory without image files"})
        for file in found or ():
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, failures


def _images_at(path: Path) -> list[Path] | None:
    """``[path]`` for a file, the image files under a directory, None if it does not exist."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )  # fmt: skip
    return [path] if path.is_file() else None


def prepare_image(path: str | os.PathLike[str], config: MixerConfig) -> torch.Tensor:
    """One file -> (in_chans, H, W) float32 in [0, 1] at the config's size (not normalised):
    `eval_sample`'s uint8 pixels / 255, exactly what evaluation feeds the model."""
    if kind := not_a_file(path):  # a FIFO would block the decoder, /dev/zero never end
        raise DataError(f"cannot read image {path}: it is {kind}")
    size = tuple(config.img_size)
    pixels = eval_sample(path, size, config.crop_pct, config.in_chans, config.interpolation)
    return pixels.float() / 255.0


def class_names_of(config: MixerConfig) -> list[str]:
    """The config's class names, or the class indices as strings."""
    return list(config.class_names or [str(i) for i in range(config.num_classes)])


@torch.no_grad()
def predict_files(
    model: MlpFamilyModel,
    inputs: Sequence[str | os.PathLike[str]],
    top_k: int = 5,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> PredictReport:
    """Top-``top_k`` classes with softmax probabilities for every image in ``inputs``;
    ``num_workers`` threads decode and resize the images (0: this thread)."""
    config = model.config
    if config.num_classes == 0:
        raise ConfigError("the model has no classifier head (num_classes=0); nothing to predict")
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    if batch_size < 1:  # range(0, n, 0) raises, a negative one predicted nothing (exit 0)
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    top_k = min(top_k, config.num_classes)
    names = class_names_of(config)
    normalize = normalizer(config.mean, config.std)
    model.eval().to(device)
    files, failures = collect_images(inputs)
    report = PredictReport(failures=failures)
    pool = ThreadPoolExecutor(num_workers) if num_workers > 0 else None
    mapper = pool.map if pool is not None else map
    try:
        with Ticker(log, "predicting", len(files), unit="image") as ticker:
            for start in range(0, len(files), batch_size):
                chunk = files[start : start + batch_size]
                _predict_chunk(model, chunk, mapper, report, names, top_k, normalize, device)
                ticker.advance(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown()
    return report


def _predict_chunk(
    model: MlpFamilyModel, chunk: list[Path], mapper: Any, report: PredictReport,
    names: list[str], top_k: int, normalize: Any, device: str | torch.device,
) -> None:  # fmt: skip
    """Prepare the images of ``chunk`` (failures go to the report) and add their top-k."""
    ready, images = [], []
    for path, (image, error) in zip(chunk, mapper(_prepared(model.config), chunk), strict=True):
        if error is None:
            images.append(image)
            ready.append(path)
        else:
            report.failures.append({"path": str(path), "error": error})
    if images:
        logits = model(normalize(torch.stack(images).to(device))).float()
        _add_predictions(report, ready, logits, names, top_k)


NOT_FINITE = (
    "the model's outputs for this image are not finite (nan/inf), so there is no prediction; "
    "the checkpoint's weights are probably nan/inf"
)


def _add_predictions(
    report: PredictReport, paths: list[Path], logits: torch.Tensor, names: list[str], top_k: int
) -> None:
    """Top-k of ``logits`` (B, num_classes) for each path; a row with nan/inf is a failure
    (it used to be printed as "8 (nan)", exit 0, and written as NaN, which is not JSON)."""
    finite = torch.isfinite(logits).all(dim=1).tolist()
    values, indices = logits.softmax(dim=1).topk(top_k, dim=1)
    for path, ok, p, idx in zip(paths, finite, values.tolist(), indices.tolist(), strict=True):
        if not ok:
            report.failures.append({"path": str(path), "error": NOT_FINITE})
            continue
        top = [
            {"class": names[i], "index": i, "probability": q} for q, i in zip(p, idx, strict=True)
        ]
        report.predictions.append(Prediction(str(path), top))


def _prepared(config: MixerConfig) -> Any:
    """path -> (image, None) or (None, error message): one image's failure is reported,
    never fatal to the rest."""

    def prepare(path: Path) -> tuple[torch.Tensor | None, str | None]:
        try:
            return prepare_image(path, config), None
        except Exception as err:
            known = isinstance(err, MixerError | OSError | ValueError)
            return None, str(err) if known else f"{type(err).__name__}: {err}"

    return prepare
