"""An ONNX Runtime int8 model of a float checkpoint, checked against the float model.

``dynamic``: `onnxruntime.quantization.quantize_dynamic` with per-channel int8 weights (the
activations' scales are computed at run time). ``static``: `quantize_static` in QDQ form,
per-channel int8 weights and uint8 activations whose ranges are fixed on calibration images
(the same training images `mlpmixer quantize` calibrates on, read by a `CalibrationDataReader`).

Both start from the float ONNX file `export_onnx` writes, in a temporary folder. The int8 file
is then run on check images (the calibration images, else seeded random ones) beside the
float PyTorch model: the top-1 agreement and the largest |logit difference| are reported, and
a file whose logits are not finite or whose agreement is under ``min_agreement`` is refused
(`RunError`), leaving ``path`` as it was.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, RunError
from ..fileio import atomic_path
from ..models.base import MlpFamilyModel
from .onnx import _require, export_onnx, run_onnx

INT8_METHODS = ("dynamic", "static")
MIN_AGREEMENT = 0.9  # int8 moves a few borderline images; a broken file moves most of them
BATCH = 32  # calibration images per batch given to onnxruntime


@dataclass
class Int8ExportReport:
    """What was written and how close it is to the float model."""

    path: str
    method: str
    bytes: int
    calibration_images: int
    check_images: int
    top1_agreement: float
    max_abs_diff: float

    def to_dict(self) -> dict:
        return asdict(self)


def _reader(images: torch.Tensor, input_name: str):  # -> CalibrationDataReader
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        """The calibration images, ``BATCH`` at a time, as onnxruntime asks for them."""

        def __init__(self) -> None:
            self.batches = iter(
                [{input_name: images[i : i + BATCH].numpy()} for i in range(0, len(images), BATCH)]
            )

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    return Batches()


def _quantize(fp32: Path, out: Path, method: str, calibration: torch.Tensor | None) -> None:
    _require("onnxruntime")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    # onnxruntime's quantizer logs advice ("consider pre-processing") on the root logger
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        if method == "dynamic":
            quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8)
            return
        assert calibration is not None
        quantize_static(str(fp32), str(out), _reader(calibration, "images"),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    finally:
        root.setLevel(level)


def export_onnx_int8(
    model: MlpFamilyModel,
    path: str | Path,
    method: str,
    calibration: torch.Tensor | None = None,
    opset: int | None = None,
    min_agreement: float = MIN_AGREEMENT,
) -> Int8ExportReport:
    """Write ``model`` as an ONNX Runtime int8 file at ``path`` (see the module docstring).

    ``calibration``: (N, C, H, W) images normalised as the model takes them; needed for
    ``static``, and the check images of both methods where given (else 64 seeded random ones).
    """
    if method not in INT8_METHODS:
        raise ConfigError(f"int8 method must be one of {INT8_METHODS}, got {method!r}")
    if method == "static" and calibration is None:
        raise ConfigError("static int8 needs calibration images (--calibration DATA)")
    model = model.eval().to(device="cpu", dtype=torch.float32)
    cfg = model.config
    generator = torch.Generator().manual_seed(0)
    check = calibration
    if check is None:
        check = torch.randn(64, cfg.in_chans, *cfg.img_size, generator=generator)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(model, fp32, check[:2], opset)
        _quantize(fp32, int8, method, calibration)
        agreement, diff = _compare(model, int8, check)
        if not (agreement >= min_agreement and diff == diff and diff != float("inf")):
            raise RunError(
                f"{path}: the {method} int8 ONNX model agrees with the float model on "
                f"{agreement:.1%} of {len(check)} images (max |logit difference| {diff:.3g}), "
                f"under {min_agreement:.0%}: not written"
            )
        with atomic_path(path) as dest:
            shutil.copyfile(int8, dest)
    return Int8ExportReport(
        str(path), method, path.stat().st_size,
        0 if calibration is None else len(calibration), len(check), agreement, diff,
    )  # fmt: skip


def _compare(model: MlpFamilyModel, int8: Path, images: torch.Tensor) -> tuple[float, float]:
    """(top-1 agreement, max |logit difference|) of the int8 file against ``model``."""
    with torch.no_grad():
        expected = torch.cat([model(images[i : i + BATCH]) for i in range(0, len(images), BATCH)])
    got = run_onnx(int8, images)
    if not torch.isfinite(got).all():
        return 0.0, float("nan")
    agreement = (got.argmax(1) == expected.argmax(1)).float().mean().item()
    return agreement, (got - expected).abs().max().item()
