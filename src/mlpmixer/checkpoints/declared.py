"""What a native safetensors header declares, checked against its config before any data is read.

The tensors' checksum is verified after they are read, so a file whose header is consistent
but declares far more than its config's model (``head.weight`` as [32768, 32768] beside a
valid ``config.json``: 4 GiB, a sparse file on disk) was read whole (minutes, twice its size
in memory) before the checksum refused it. The header alone tells the shapes: each tensor
the config's model has must be declared with its shape, and the file may not hold more data
than that model needs. (safetensors itself checks, on opening, that the header's offsets
cover exactly the file's data.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError

# bytes per element of safetensors' dtype names (8 for any name not listed: an upper bound)
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
             "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}  # fmt: skip
SLACK_BYTES = 2**20  # extra tensors below this (a buffer, a note) are left to the key check


def declared_tensors(handle: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype name) of every tensor of an open ``safe_open`` handle (header only)."""
    out = {}
    for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
        view = handle.get_slice(name)
        out[name] = (tuple(view.get_shape()), view.get_dtype())
    return out


def model_shapes(fields: Mapping[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """name -> shape of the state dict of the model ``fields`` describe (built on the meta
    device: no memory); None when the fields are not a valid config (refused later, by name)."""
    from ..models.family import build_model
    from ..models.spec import config_from_dict

    try:
        config = config_from_dict(dict(fields))
        with torch.device("meta"):
            model = build_model(config)
    except (ConfigError, TypeError, ValueError):
        return None
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_declared(
    path: Path, declared: Mapping[str, tuple[tuple[int, ...], str]], fields: Mapping[str, Any]
) -> None:
    """`CheckpointError` if the header declares a shape the config's model does not have, or
    more data than it needs; nothing is read yet."""
    expected = model_shapes(fields)
    if expected is None:
        return
    for name, (shape, _) in declared.items():
        if name in expected and shape != expected[name]:
            raise CheckpointError(
                f"{path}: tensor {name} is declared {list(shape)} in the file's header, but the "
                f"config's model has {list(expected[name])}; refusing to read "
                f"{_nbytes(declared[name]):,} bytes of data that cannot fit (a damaged or "
                "forged file: restore it or save the model again)"
            )
    needed = sum(math.prod(s) * 8 for s in expected.values())
    total = sum(_nbytes(d) for d in declared.values())
    if total > needed + SLACK_BYTES:
        extra = sorted(set(declared) - set(expected))
        raise CheckpointError(
            f"{path}: the file's header declares {total:,} bytes of tensors, more than the "
            f"config's model can hold ({needed:,} at most); extra tensors: "
            f"{', '.join(extra[:5]) or 'none'}; refusing to read it"
        )


def _nbytes(entry: tuple[tuple[int, ...], str]) -> int:
    shape, dtype = entry
    return math.prod(shape) * _ITEMSIZE.get(dtype, 8)
