"""Export for deployment: ONNX, TorchScript and torch.export programs, each with a dynamic
batch dimension and checked against PyTorch after writing."""

from .export import (
    DEFAULT_SUFFIX,
    EXPORT_FORMATS,
    ExportReport,
    export_model,
    resolve_format,
    run_exported,
    verify_export,
)
from .onnx import MissingExtraError, read_onnx_config, run_onnx

__all__ = [
    "DEFAULT_SUFFIX",
    "EXPORT_FORMATS",
    "ExportReport",
    "MissingExtraError",
    "export_model",
    "read_onnx_config",
    "resolve_format",
    "run_exported",
    "run_onnx",
    "verify_export",
]
