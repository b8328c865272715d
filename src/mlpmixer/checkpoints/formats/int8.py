"""`mlpmixer quantize`'s int8 folder (``quantized.safetensors`` + ``quantized.json``), read only.

The folder is described in `mlpmixer.deploy.storage`: int8 weights with their scales, the
tensors kept in float, and a manifest naming the method, what is kept in float and the float
model's config. Reading it rebuilds the quantized model (`deploy.storage.load_quantized`), so
the `Checkpoint` carries that model (``model``) and an empty ``state``: `load_model` returns
the model as it is, and every command that only runs a model (eval, predict, fewshot, bench,
info) takes the folder like any checkpoint.

torchao is imported only when such a folder is read; without it the read fails in one line
naming the extra to install. Detection reads the manifest's ``format`` field alone.

Read only, and not a float model: `convert`, training or fine-tuning from it, resizing and
TorchScript export refuse it (`refuse_int8`), since its float weights are gone.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import CheckpointError, ConfigError
from .base import Candidate, Checkpoint, CheckpointFormat

NAME = "int8"
MANIFEST = "quantized.json"  # deploy.storage.MANIFEST, named here so detection imports nothing
FORMAT_NAME = "mlpmixer-int8"  # deploy.storage.FORMAT_NAME
INSTALL_HINT = "pip install 'mlpmixer[int8]'"


def _detect(candidate: Candidate) -> bool:
    manifest = candidate.path / MANIFEST
    if not candidate.path.is_dir() or not manifest.is_file():
        return False
    try:
        found = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and found.get("format") == FORMAT_NAME


def _read(candidate: Candidate) -> Checkpoint:
    from ...deploy.extra import torchao_module

    try:
        torchao_module()
    except ConfigError as err:
        raise CheckpointError(
            f"{candidate.path}: an int8 model folder; reading it needs torchao: {INSTALL_HINT}"
        ) from err
    from ...deploy.storage import load_quantized

    model = load_quantized(candidate.path)
    return Checkpoint(NAME, model.config, {}, candidate.source, model=model)


def is_int8(model: Any) -> bool:
    """Whether ``model`` is a quantized model read from (or made for) an int8 folder: its
    ``int8`` marker (`deploy.QuantizedMixer.int8`), the one test export makes too (export
    cannot import deploy or this package: deploy builds on it)."""
    return getattr(model, "int8", False) is True


def refuse_int8(what: str, source: Any) -> CheckpointError:
    """The one-line error of a command that needs float weights, given an int8 folder."""
    return CheckpointError(
        f"{source}: an int8 model cannot be {what}: its float weights are gone (it is kept "
        "for inference only); use the float checkpoint it was quantized from"
    )


FORMAT = CheckpointFormat(name=NAME, detect=_detect, read=_read)
