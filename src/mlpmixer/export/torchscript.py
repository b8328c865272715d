"""TorchScript export by tracing (``torch.jit.trace``), loadable from C++ with libtorch.

Tracing records the operations for one example batch; the model has no data-dependent
control flow, and the batch size is read from the input at run time, so the traced module
accepts any batch size. (``torch.jit`` is deprecated in recent PyTorch in favour of
``torch.export``; it is kept for runtimes that still load TorchScript.) The config is stored
as the extra file ``config.json`` inside the archive.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from ..layout import CONFIG_JSON
from ..models.base import MlpFamilyModel


def export_torchscript(model: MlpFamilyModel, path: Path, example: torch.Tensor) -> None:
    """Trace ``model`` on ``example`` and save the TorchScript archive to ``path``.

    Saved through a buffer, then written by Python: torch.jit.save to a path on a full disk
    aborted the whole process (C++ exception, exit 134) instead of raising.
    """
    with warnings.catch_warnings():
        # The input-shape check in forward() becomes a constant in the trace (expected), and
        # torch.jit prints a deprecation notice; neither is actionable for the user.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        extra = {CONFIG_JSON: json.dumps(model.config.to_dict())}
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files=extra)
    path.write_bytes(buffer.getvalue())


def load_torchscript(path: Path) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu")
