"""ONNX export (torch's ``torch.export``-based exporter) and a check in onnxruntime.

The graph takes ``images`` (batch, in_chans, H, W) float32 and returns ``logits``
(batch, num_classes); the batch dimension is symbolic, so one file serves any batch size.
The model's config (preprocessing, class names) is stored in the file's metadata under
``mlpmixer_config`` so a deployment can read how to prepare images.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, MixerError, RunError
from ..models.base import MlpFamilyModel

EXTRA_HINT = "install the export extra: pip install 'mlpmixer[export]'"


class MissingExtraError(MixerError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def _require(module: str):  # -> module
    try:
        return __import__(module)
    except ImportError as err:
        raise MissingExtraError(f"{module} is not installed; {EXTRA_HINT}") from err


# torch's torch.export-based ONNX exporter writes opsets 18 and up; asked for less, it
# silently wrote 18 (or failed in the version converter), asked for more than it knows, a
# traceback.
MIN_OPSET = 18


def max_opset() -> int:
    """The newest opset this torch's exporter supports."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET
    except ImportError:  # pragma: no cover - a torch without the constant
        return MIN_OPSET
    return int(ONNX_MAX_OPSET)


def check_opset(opset: int | None) -> None:
    """`ConfigError` naming ``opset`` unless the exporter supports it (None: its default)."""
    if opset is None:
        return
    if (
        isinstance(opset, bool)
        or not isinstance(opset, int)
        or not MIN_OPSET <= opset <= max_opset()
    ):
        raise ConfigError(
            f"ONNX opset {opset!r} is not supported by this torch's exporter; "
            f"use {MIN_OPSET}..{max_opset()} (or leave --opset out for its default)"
        )


def export_onnx(
    model: MlpFamilyModel, path: Path, example: torch.Tensor, opset: int | None
) -> None:
    """Write ``model`` as ONNX to ``path`` with a dynamic batch dimension.

    ``path`` is written directly: `export_model` gives it a temporary path and renames it
    into place once the file has been checked.
    """
    check_opset(opset)
    _require("onnx")
    _require("onnxscript")
    import onnx

    batch = torch.export.Dim("batch", min=1)
    options = {} if opset is None else {"opset_version": opset}
    # The exporter prints progress lines, deprecation chatter and "torchvision is not
    # installed" log lines (about operators a Mixer does not use); keep the terminal quiet.
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes={"images": {0: batch}},
                verbose=False,
                **options,
            )
    finally:
        onnx_log.setLevel(level)
    if program is None:  # pragma: no cover - only with the legacy exporter
        raise RunError("torch.onnx.export returned no program")
    proto = program.model_proto
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        raise RunError(f"asked for ONNX opset {opset} but the exporter wrote opset {written}")
    entry = proto.metadata_props.add()
    entry.key, entry.value = "mlpmixer_config", json.dumps(model.config.to_dict())
    onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path))


def run_onnx(path: Path, images: torch.Tensor) -> torch.Tensor:
    """Logits of the ONNX file at ``path`` for ``images`` (B, C, H, W), computed by onnxruntime."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.detach().cpu().numpy().astype(np.float32)})
    return torch.from_numpy(logits)


def read_onnx_config(path: Path) -> dict:
    """The Mixer config stored in an exported ONNX file's metadata."""
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == "mlpmixer_config":
            return json.loads(entry.value)
    raise RunError(f"{path}: no mlpmixer_config metadata (not exported by mlpmixer?)")
