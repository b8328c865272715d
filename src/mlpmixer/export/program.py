"""``torch.export`` ExportedProgram (``.pt2``): the graph ``torch.compile``/AOTInductor consume.

The batch dimension is a symbolic ``Dim("batch")``; the config is stored as the extra file
``config.json``. Load with ``torch.export.load(path).module()``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..fileio import atomic_path
from ..models.mixer import MlpMixer


def export_program(model: MlpMixer, path: Path, example: torch.Tensor) -> None:
    """Export ``model`` with a dynamic batch dimension and save the program to ``path``."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes={"images": {0: batch}})
    extra = {"config.json": json.dumps(model.config.to_dict())}
    with atomic_path(path) as tmp:
        torch.export.save(program, str(tmp), extra_files=extra)


def load_program(path: Path) -> torch.nn.Module:
    return torch.export.load(str(path)).module()
