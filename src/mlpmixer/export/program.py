"""``torch.export`` ExportedProgram (``.pt2``): the graph ``torch.compile``/AOTInductor consume.

The batch dimension is a symbolic ``Dim("batch")``; the config is stored as the extra file
``config.json``. Load with ``torch.export.load(path).module()``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from ..layout import CONFIG_JSON
from ..models.base import MlpFamilyModel


def export_program(model: MlpFamilyModel, path: Path, example: torch.Tensor) -> None:
    """Export ``model`` with a dynamic batch dimension and save the program to ``path``."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes={"images": {0: batch}})
    extra = {CONFIG_JSON: json.dumps(model.config.to_dict())}
    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer, not a temp name
    torch.export.save(program, buffer, extra_files=extra)
    path.write_bytes(buffer.getvalue())


def load_program(path: Path) -> torch.nn.Module:
    """The module of the program saved at ``path``, whatever its name ends with.

    Read through a buffer: given a name not ending in ``.pt2`` (the export is verified while
    it is still an atomic-write temp file), torch logs two raw ``Unable to load package``
    warnings before falling back to its older reader.
    """
    return torch.export.load(io.BytesIO(path.read_bytes())).module()
