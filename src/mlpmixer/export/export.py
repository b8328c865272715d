"""Export a Mixer for deployment and check the exported file against PyTorch.

``export_model(model, "mixer.onnx")`` writes the file (format from the suffix or given) to a
temporary path, then `verify_export` runs it on random images at two batch sizes and compares
the logits with the PyTorch model's: they must be finite and the largest absolute difference
within ``tolerance``. Only a file that passes replaces ``mixer.onnx`` (and, when asked, its
JSON report ``mixer.onnx.json``, swapped in together); a failing export changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, RunError
from ..fileio import atomic_pair, atomic_path
from ..models.base import MlpFamilyModel
from ..progress import PROGRESS, Heartbeat
from .onnx import export_onnx, run_onnx
from .program import export_program, load_program
from .torchscript import export_torchscript, load_torchscript

log = logging.getLogger(__name__)

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


def example_images(model: MlpFamilyModel, batch_size: int, seed: int = 0) -> torch.Tensor:
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
    model: MlpFamilyModel, path: Path, format: str, batch_sizes: tuple[int, ...] = (1, 3)
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


def report_path(path: Path) -> Path:
    """Where the JSON report of an export to ``path`` goes: ``PATH.json``."""
    return path.with_name(path.name + ".json")


@contextlib.contextmanager
def _destination(path: Path, with_report: bool) -> Iterator[tuple[Path, Path | None]]:
    """Temporary paths for the file (and its report), renamed into place only on success."""
    if with_report:
        with atomic_pair(path, report_path(path)) as (tmp, tmp_report):
            yield tmp, tmp_report
    else:
        with atomic_path(path) as tmp:
            yield tmp, None


def _write(
    model: MlpFamilyModel, path: Path, format: str, example: torch.Tensor, opset: int | None
) -> None:
    if format == "onnx":
        export_onnx(model, path, example, opset)
    elif format == "torchscript":
        export_torchscript(model, path, example)
    else:
        export_program(model, path, example)


def _check_match(path: Path, format: str, diff: float | None, tolerance: float) -> None:
    """`RunError` unless the exported logits were finite and within ``tolerance``."""
    if diff is not None and math.isnan(diff):
        raise RunError(
            f"{path}: the logits are not finite (nan/inf), so the export cannot be checked; "
            "the model's weights are probably nan/inf; nothing was written"
        )
    if diff is not None and not diff <= tolerance:
        raise RunError(
            f"{path}: exported {format} logits differ from PyTorch by {diff:.3g} "
            f"(tolerance {tolerance:g}); nothing was written"
        )


def export_model(
    model: MlpFamilyModel,
    path: str | os.PathLike[str],
    format: str | None = None,
    verify: bool = True,
    tolerance: float = TOLERANCE,
    opset: int | None = None,
    report: Mapping[str, Any] | None = None,
) -> ExportReport:
    """Write ``model`` (eval mode, CPU, float32) as ``format`` with a dynamic batch dimension.

    With ``verify`` the file is run at batch sizes 1 and 3 before it is put in place: logits
    that are not finite or differ from PyTorch by more than ``tolerance`` (absolute) raise
    `RunError`, and ``path`` keeps its previous content. With ``report`` (extra fields, e.g.
    the checkpoint's name) the JSON report is written to ``PATH.json`` and swapped in
    together with the file (`mlpmixer.fileio.atomic_pair`).
    """
    path = Path(path)
    format = resolve_format(path, format)
    # an int8 folder's model (deploy.QuantizedMixer, torchao tensors), known by its marker as
    # checkpoints.formats.int8.is_int8 knows it: deploy builds on this package, so no import
    if getattr(model, "int8", False) is True:
        raise ConfigError(
            f"an int8 model cannot be exported to {format}: TorchScript and ONNX take a float "
            "model; export the float checkpoint it was quantized from"
        )
    model = model.eval().to(device="cpu", dtype=torch.float32)
    model.set_grad_checkpointing(False)
    batch_sizes = (1, 3)
    cfg = model.config
    with _destination(path, report is not None) as (tmp, tmp_report), Heartbeat(log, "export"):
        log.info("writing %s (%s)", path, format, extra=PROGRESS)
        _write(model, tmp, format, example_images(model, 2), opset)
        if verify:
            log.info("checking it against PyTorch at batch sizes %s", batch_sizes, extra=PROGRESS)
        diff = verify_export(model, tmp, format, batch_sizes) if verify else None
        _check_match(path, format, diff, tolerance)
        result = ExportReport(
            path=str(path),
            format=format,
            bytes=tmp.stat().st_size,
            input_shape=["batch", cfg.in_chans, *cfg.img_size],
            num_classes=cfg.num_classes,
            verified_batch_sizes=list(batch_sizes) if verify else [],
            max_abs_diff=diff,
            tolerance=tolerance,
        )
        if tmp_report is not None:
            data = {**(report or {}), **result.to_dict()}
            tmp_report.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return result
