"""Export a Mixer for deployment and check the exported file against PyTorch.

``export_model(model, "mixer.onnx")`` writes the file (format from the suffix or given),
then `verify_export` runs it on random images at two batch sizes and compares the logits
with the PyTorch model's: the largest absolute difference must stay within ``tolerance``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, RunError
from ..models.mixer import MlpMixer
from .onnx import export_onnx, run_onnx
from .program import export_program, load_program
from .torchscript import export_torchscript, load_torchscript

EXPORT_FORMATS = ("onnx", "torchscript", "exported-program")
SUFFIXES = {".onnx": "onnx", ".ts": "torchscript", ".pt": "torchscript", ".pt2": "exported-program"}
DEFAULT_SUFFIX = {"onnx": ".onnx", "torchscript": ".ts", "exported-program": ".pt2"}
TOLERANCE = 1e-4


@dataclass
class ExportReport:
    """What `export_model` wrote and how closely the file reproduces the PyTorch logits."""

    path: str
    format: str
    bytes: int
    input_shape: list[Any]  # ["batch", C, H, W]
    num_classes: int
    verified_batch_sizes: list[int]
    max_abs_diff: float | None  # None when not verified
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_format(path: Path, format: str | None) -> str:
    """``format`` if given, else the one ``path``'s suffix implies (.onnx, .ts/.pt, .pt2)."""
    if format is not None:
        if format not in EXPORT_FORMATS:
            raise ConfigError(f"export format must be one of {EXPORT_FORMATS}, got {format!r}")
        return format
    if path.suffix in SUFFIXES:
        return SUFFIXES[path.suffix]
    raise ConfigError(
        f"cannot tell the export format from {path.name!r}; pass a format or use one of the "
        f"suffixes {sorted(SUFFIXES)}"
    )


def example_images(model: MlpMixer, batch_size: int, seed: int = 0) -> torch.Tensor:
    """Standard-normal images (batch_size, in_chans, H, W) at the model's resolution."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, cfg.in_chans, *cfg.img_size), generator=g)


def run_exported(path: Path, format: str, images: torch.Tensor) -> torch.Tensor:
    """Logits of an exported file for ``images``, computed by its own runtime."""
    if format == "onnx":
        return run_onnx(path, images)
    module = load_torchscript(path) if format == "torchscript" else load_program(path)
    with torch.no_grad():
        return module(images)


def verify_export(
    model: MlpMixer, path: Path, format: str, batch_sizes: tuple[int, ...] = (1, 3)
) -> float:
    """Largest |exported - PyTorch| logit over random batches of each size in ``batch_sizes``.

    nan when either side has a non-finite logit: ``max(0.0, nan)`` is 0.0, which reported
    an all-nan model as a perfect match.
    """
    worst = 0.0
    for i, batch_size in enumerate(batch_sizes):
        images = example_images(model, batch_size, seed=100 + i)
        with torch.no_grad():
            expected = model(images)
        got = run_exported(path, format, images)
        if got.shape != expected.shape:
            raise RunError(
                f"{path}: exported model returned shape {tuple(got.shape)} for batch {batch_size}, "
                f"expected {tuple(expected.shape)}"
            )
        diff = (got.float() - expected.float()).abs().max().item()
        finite = bool(torch.isfinite(got).all() and torch.isfinite(expected).all())
        worst = max(worst, diff) if finite and not math.isnan(diff) else math.nan
    return worst


def export_model(
    model: MlpMixer,
    path: str | os.PathLike[str],
    format: str | None = None,
    verify: bool = True,
    tolerance: float = TOLERANCE,
    opset: int | None = None,
) -> ExportReport:
    """Write ``model`` (eval mode, CPU, float32) as ``format`` with a dynamic batch dimension.

    With ``verify`` the file is run at batch sizes 1 and 3 and must match PyTorch within
    ``tolerance`` (absolute, on logits), else `RunError`. The written file is left in place
    either way so that it can be inspected.
    """
    path = Path(path)
    format = resolve_format(path, format)
    model = model.eval().to(device="cpu", dtype=torch.float32)
    model.set_grad_checkpointing(False)
    example = example_images(model, 2)
    if format == "onnx":
        export_onnx(model, path, example, opset)
    elif format == "torchscript":
        export_torchscript(model, path, example)
    else:
        export_program(model, path, example)
    batch_sizes = (1, 3)
    diff = verify_export(model, path, format, batch_sizes) if verify else None
    cfg = model.config
    report = ExportReport(
        path=str(path),
        format=format,
        bytes=path.stat().st_size,
        input_shape=["batch", cfg.in_chans, *cfg.img_size],
        num_classes=cfg.num_classes,
        verified_batch_sizes=list(batch_sizes) if verify else [],
        max_abs_diff=diff,
        tolerance=tolerance,
    )
    if diff is not None and math.isnan(diff):
        raise RunError(
            f"{path}: the logits are not finite (nan/inf), so the export cannot be checked; "
            "the model's weights are probably nan/inf"
        )
    if diff is not None and not diff <= tolerance:
        raise RunError(
            f"{path}: exported {format} logits differ from PyTorch by {diff:.3g} "
            f"(tolerance {tolerance:g})"
        )
    return report
