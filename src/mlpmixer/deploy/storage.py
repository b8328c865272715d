"""The int8 file format: no pickles, rebuilt from a manifest on load.

A folder with two files:

* ``quantized.safetensors``: every tensor of the quantized model — the int8 weights with
  their float scales and zero points, and the float tensors kept (norms, biases, stem, head).
  A torchao weight is stored as its parts, ``NAME::qdata`` (int8), ``NAME::scale``,
  ``NAME::zero_point``.
* ``quantized.json``: the manifest — ``format`` (`FORMAT_NAME`), ``method``,
  ``kept_in_float``, ``quantized`` (the int8 layers), the float model's ``config``, the
  activation (scale, zero point) of each quantize node of a static model (``activations``),
  ``calibration_images`` and the torch/torchao versions that wrote it.

`load_quantized` rebuilds the model the way `quantize` built it — the float model of
``config`` with fresh weights, quantized by the same method with the same layers kept (for
static: exported, prepared and converted after one forward on zeros) — then overwrites every
tensor and activation parameter with the saved ones; a name, shape or dtype that does not
match is a `CheckpointError` (this happens if the torch/torchao versions build another graph).

The checkpoint-format registry reads such a folder as format ``int8``
(`mlpmixer.checkpoints.formats.int8`), so `load_model` and every command that runs a model
take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, CheckpointNotFoundError
from ..fileio import atomic_directory
from ..models.spec import family_spec
from .methods import check_method
from .plain import plain_model
from .quantize import QuantizedMixer

FORMAT_NAME = "mlpmixer-int8"
FORMAT_VERSION = 1
MANIFEST = "quantized.json"
TENSORS = "quantized.safetensors"
PART = "::"  # NAME::qdata, NAME::scale: the parts of a torchao int8 weight


def detect(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder in this format (its manifest names `FORMAT_NAME`)."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def save_quantized(model: QuantizedMixer, out: str | os.PathLike[str]) -> Path:
    """Write ``model`` to the folder ``out`` atomically (replaced whole, or left as it was)."""
    tensors = _flat_tensors(model)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "method": model.method,
        "kept_in_float": list(model.kept_in_float),
        "always_float": ["norms", "activations", "residual adds"],
        "quantized": list(model.quantized),
        "calibration_images": model.calibration_images,
        "config": model.config.to_dict(),
        "versions": _versions(),
    }
    if model.method == "static":
        from .static import activation_params

        manifest["activations"] = activation_params(model.inner)
        manifest["activation_bits"] = model.activation_bits
    with atomic_directory(out) as tmp:
        save_file(tensors, str(tmp / TENSORS), metadata={"format": FORMAT_NAME})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Path(out)


def load_quantized(path: str | os.PathLike[str]) -> QuantizedMixer:
    """The `QuantizedMixer` saved in the folder ``path`` (`CheckpointError` if it is not one)."""
    folder = Path(path)
    manifest = _read_manifest(folder)
    tensors = _read_tensors(folder / TENSORS)
    try:
        config = _config(manifest["config"])
        method = check_method(manifest["method"])
        keep = tuple(manifest["kept_in_float"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / MANIFEST}: incomplete manifest ({err})") from err
    bits = manifest.get("activation_bits", 8)  # written before the field: full range
    if method == "static" and bits not in (7, 8):
        raise CheckpointError(f"{folder / MANIFEST}: activation_bits must be 7 or 8, got {bits!r}")
    model = _skeleton(config, method, keep, bits)
    if method == "static":
        _fill_static(model, tensors, manifest.get("activations") or {}, folder)
        _warn_if_saturating(model, folder)
    else:
        _fill_torchao(model.inner, tensors, folder)
    model.quantized = tuple(manifest.get("quantized", model.quantized))
    model.calibration_images = int(manifest.get("calibration_images", 0))
    return model


# ----- writing ------------------------------------------------------------------------------
def _flat_tensors(model: QuantizedMixer) -> dict[str, torch.Tensor]:
    from .weights import inner_tensors, is_quantized

    flat: dict[str, torch.Tensor] = {}
    for name, value in model.inner.state_dict().items():
        if is_quantized(value):
            for part, tensor in inner_tensors(value).items():
                flat[f"{name}{PART}{part}"] = tensor.detach().contiguous()
        else:
            flat[name] = value.detach().contiguous()
    return flat


def _versions() -> dict[str, str]:
    found = {"torch": torch.__version__}
    with contextlib.suppress(metadata.PackageNotFoundError):
        found["torchao"] = metadata.version("torchao")
    return found


# ----- reading ------------------------------------------------------------------------------
def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest = folder / MANIFEST
    if not folder.exists():
        raise CheckpointNotFoundError(f"{folder}: no such quantized model folder")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{manifest}: not a readable int8 manifest ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{manifest}: not an {FORMAT_NAME} manifest")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{manifest}: format version {data['format_version']} is newer than this "
            f"mlpmixer reads ({FORMAT_VERSION}); upgrade mlpmixer"
        )
    return data


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err


def _config(data: dict[str, Any]) -> Any:
    """The float model's config, read by its family's config class (configs written before
    the ``family`` field are Mixers)."""
    return family_spec(data.get("family", "mixer")).config_class.from_dict(data)


def _skeleton(config: Any, method: str, keep: tuple[str, ...], bits: int = 8) -> QuantizedMixer:
    """The model `quantize` would build from ``config``, with fresh (to be replaced) weights."""
    from .quantize import quantize

    float_model = plain_model(config)
    zeros = None
    if method == "static":
        zeros = torch.zeros(2, config.in_chans, *config.img_size)
    return quantize(float_model, method, calibration=zeros, keep_float=keep, activation_bits=bits)


def _warn_if_saturating(model: QuantizedMixer, folder: Path) -> None:
    """Full-range activations on a CPU without VNNI/AMX: its int8 products saturate."""
    from ..cpu_kind import effective_cpu, int8_units

    if model.activation_bits == 8 and not int8_units(effective_cpu()):
        warnings.warn(
            f"{folder}: static int8 with 8-bit activations on a CPU without VNNI/AMX, whose "
            "int8 products add pairs in 16 bits and saturate (logits can be off by more than "
            "1); quantize it again on this CPU (7-bit activations are its default there)",
            stacklevel=3,
        )


@torch.no_grad()
def _fill_torchao(module: torch.nn.Module, tensors: dict[str, torch.Tensor], folder: Path) -> None:
    from .weights import inner_tensors, is_quantized

    wanted: dict[str, torch.Tensor] = {}
    for name, value in module.state_dict(keep_vars=True).items():
        if is_quantized(value):
            for part, tensor in inner_tensors(value).items():
                wanted[f"{name}{PART}{part}"] = tensor
        else:
            wanted[name] = value
    _copy_all(wanted, tensors, folder)


@torch.no_grad()
def _fill_static(
    model: QuantizedMixer,
    tensors: dict[str, torch.Tensor],
    activations: dict[str, Any],
    folder: Path,
) -> None:
    from .static import activation_params, set_activation_params

    expected = set(activation_params(model.inner))
    if expected != set(activations):
        raise CheckpointError(
            f"{folder / MANIFEST}: its activation quantizers ({len(activations)}) do not match "
            f"the graph this torch/torchao builds ({len(expected)}); quantize again here"
        )
    _copy_all(dict(model.inner.state_dict(keep_vars=True)), tensors, folder)
    set_activation_params(model.inner, activations)


def _copy_all(
    wanted: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], folder: Path
) -> None:
    """Copy each saved tensor into its place; names, shapes and dtypes must match exactly."""
    missing = sorted(set(wanted) - set(tensors))
    extra = sorted(set(tensors) - set(wanted))
    if missing or extra:
        raise CheckpointError(
            f"{folder / TENSORS}: tensors do not fit the model "
            f"(missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, target in wanted.items():
        saved = tensors[name]
        if saved.shape != target.shape or saved.dtype != target.dtype:
            raise CheckpointError(
                f"{folder / TENSORS}: {name} is {saved.dtype} {tuple(saved.shape)}, "
                f"the model needs {target.dtype} {tuple(target.shape)}"
            )
        target.copy_(saved)


# What the checkpoint-format registry reads this folder with: checkpoints/formats/int8.py
# (format `int8`, read only) calls `load_quantized`; `detect` is kept for the library's users.
FORMAT_ENTRY = {
    "name": FORMAT_NAME,
    "detect": detect,
    "read": load_quantized,
    "write": save_quantized,
}
