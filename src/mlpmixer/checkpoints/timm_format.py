"""timm's MLP-Mixer state dicts (``timm.models.mlp_mixer``, e.g. ``mixer_b16_224``).

timm names a block's parts ``norm1``, ``mlp_tokens``, ``norm2``, ``mlp_channels``; this
package names them after the paper (``token_norm``, ``token_mixing``, ``channel_norm``,
``channel_mixing``). Layouts are identical. timm's Mixers use the exact (erf) GELU, so models
loaded from timm weights do too. Files: ``.pth``/``.pt``/``.bin`` (read with
``torch.load(weights_only=True)``: no pickled code runs), ``.safetensors``, or a hub-layout
directory (``config.json`` with ``"architecture": "mixer_..."`` + weights).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..fileio import atomic_directory, atomic_path, atomic_write_json
from ..layout import CONFIG_JSON, SAFETENSORS_SUFFIX, SAFETENSORS_WEIGHTS, TORCH_SUFFIXES
from ..models.config import MixerConfig
from ..models.registry import list_models, model_config
from ..tensor_checks import check_tensor_views  # also used by train/state.py
from .sidecar import config_fields, fields_from

# timm's block part names -> this package's, per family (a prefix of the key inside a block).
_MIXER_NAMES = {
    "norm1": "token_norm",
    "mlp_tokens": "token_mixing",
    "norm2": "channel_norm",
    "mlp_channels": "channel_mixing",
}
TIMM_BLOCK_NAMES: dict[str, dict[str, str]] = {
    "mixer": _MIXER_NAMES,
    "gmixer": _MIXER_NAMES,
    "resmlp": {
        "norm1": "token_norm",
        "linear_tokens": "token_mixing",
        "ls1": "token_scale",
        "norm2": "channel_norm",
        "mlp_channels": "channel_mixing",
        "ls2": "channel_scale",
    },
    "gmlp": {
        "norm": "norm",
        "mlp_channels.fc1": "fc1",
        "mlp_channels.gate": "spatial_gating",
        "mlp_channels.fc2": "fc2",
    },
}
# A key that only the family's timm state dicts have (Mixer and gMixer: see timm_family).
TIMM_MARKERS = {
    "blocks.0.mlp_tokens.fc1.weight": "mixer",
    "blocks.0.linear_tokens.weight": "resmlp",
    "blocks.0.mlp_channels.gate.proj.weight": "gmlp",
}
TIMM_MARKER = "blocks.0.mlp_tokens.fc1.weight"
WRAPPERS = ("state_dict", "model", "module")  # training scripts nest the weights in these
_BLOCK_KEY = re.compile(r"^(blocks\.\d+\.)(.+)$")


def rename_block_keys(
    state: Mapping[str, torch.Tensor], table: Mapping[str, str]
) -> dict[str, torch.Tensor]:
    """Rename the part of each ``blocks.<i>.<part>...`` key found in ``table`` (longest first)."""
    parts = sorted(table, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        m = _BLOCK_KEY.match(key)
        if m:
            rest = m.group(2)
            part = next((p for p in parts if rest == p or rest.startswith(p + ".")), None)
            if part is not None:
                key = m.group(1) + table[part] + rest[len(part) :]
        out[key] = value
    return out


def timm_family(state: Mapping[str, torch.Tensor]) -> str | None:
    """The family of a timm state dict, or None if it is not one of timm's Mixer-family models.

    Mixer and gMixer share key names; gMixer's second layers read half the first's width.
    """
    family = next((f for key, f in TIMM_MARKERS.items() if key in state), None)
    if family == "mixer":
        width = state["blocks.0.mlp_tokens.fc1.weight"].shape[0]
        fc2 = state.get("blocks.0.mlp_tokens.fc2.weight")
        if fc2 is not None and fc2.ndim == 2 and 2 * fc2.shape[1] == width:
            family = "gmixer"
    return family


def _flat_affine(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm stores ResMLP's Affine α, β as (1, 1, C); this package as (C,)."""
    return {k: v.flatten() if k.endswith((".alpha", ".beta")) else v for k, v in state.items()}


def timm_to_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm key names and layouts -> this package's (any family)."""
    family = timm_family(state) or "mixer"
    return _flat_affine(rename_block_keys(state, TIMM_BLOCK_NAMES[family]))


def state_to_timm(
    state: Mapping[str, torch.Tensor], family: str = "mixer"
) -> dict[str, torch.Tensor]:
    """This package's key names and layouts -> timm's, for a model of ``family``."""
    reverse = {ours: theirs for theirs, ours in TIMM_BLOCK_NAMES[family].items()}
    out = rename_block_keys(state, reverse)
    if family == "resmlp":
        out = {
            k: v.reshape(1, 1, -1) if k.endswith((".alpha", ".beta")) else v for k, v in out.items()
        }
    return out


def unwrap_state_dict(obj: Any, source: Any) -> dict[str, torch.Tensor]:
    """The flat name -> tensor dict inside what ``torch.load`` returned (wrappers, DDP prefix)."""
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPERS if k in obj), None)
        if inner is None:
            raise CheckpointError(f"{source}: no tensors found (top-level keys: {sorted(obj)[:8]})")
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict, got {type(obj).__name__}")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):  # saved from DDP
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a torch pickle, loaded with ``weights_only=True`` (no code runs)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for hostile or corrupt pickles
        raise CheckpointError(
            f"{path}: cannot be loaded as plain weights ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Files that need to run code "
            "to load are refused"
        ) from err
    state = unwrap_state_dict(obj, path)
    check_tensor_views(state, path)
    return state


def timm_hub_fields(config_path: Path) -> dict[str, Any]:
    """Preprocessing fields from a timm hub ``config.json`` (mean, std, crop, interpolation)."""
    try:
        if config_path.stat().st_size > 16 * 2**20:
            raise CheckpointError(f"{config_path}: larger than 16 MiB; not a timm config")
        data = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"{config_path}: unreadable timm config ({err})") from err
    pre = data.get("pretrained_cfg", {}) if isinstance(data, dict) else {}
    fields: dict[str, Any] = {}
    for key in ("mean", "std", "crop_pct", "interpolation"):
        if key in pre:
            fields[key] = tuple(pre[key]) if isinstance(pre[key], list) else pre[key]
    if isinstance(pre.get("input_size"), list) and len(pre["input_size"]) == 3:
        fields["img_size"] = tuple(pre["input_size"][1:])
    if isinstance(data, dict) and isinstance(data.get("label_names"), list):
        fields["class_names"] = tuple(data["label_names"])
    return fields


STORED_FIELDS_KEY = "mlpmixer_fields"  # safetensors metadata key


def timm_architecture(config: MixerConfig) -> str:
    """timm's model name for ``config``'s shape (``mixer_b16_224``...), or ``<family>_custom``."""
    same = ("family", "img_size", "patch_size", "hidden_dim", "num_blocks", "channels_mlp_dim")
    for name in list_models("*_224"):
        reference = model_config(name)
        if all(getattr(reference, f) == getattr(config, f) for f in same):
            return name
    return f"{config.family}_custom"


def write_timm(path: Path, config: MixerConfig, state: Mapping[str, torch.Tensor]) -> None:
    """timm key names: ``.pth``/``.pt``/``.bin`` (torch.save), ``.safetensors``, or a hub dir."""
    from safetensors.torch import save_file

    if config.gelu != "none" and config.family != "gmixer":
        warnings.warn(
            f"timm's Mixer uses the exact (erf) GELU; this model uses gelu={config.gelu!r}, so "
            "timm will compute slightly different outputs with these weights",
            stacklevel=3,
        )
    tensors = {
        k: v.detach().contiguous().cpu() for k, v in state_to_timm(state, config.family).items()
    }
    if path.suffix in TORCH_SUFFIXES:
        with atomic_path(path) as tmp:
            torch.save(tensors, tmp)
        return
    metadata = {"format": "pt", STORED_FIELDS_KEY: _fields_json(config)}
    if path.suffix == SAFETENSORS_SUFFIX:
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
        return
    # a timm hub-layout directory, written as a whole (built aside, then renamed into place):
    # a kill never leaves a new config.json next to old weights
    timm_config = {
        "architecture": timm_architecture(config),
        "num_classes": config.num_classes,
        "num_features": config.hidden_dim,
        **({"label_names": list(config.class_names)} if config.class_names else {}),
        "pretrained_cfg": {
            "input_size": [config.in_chans, *config.img_size],
            "mean": list(config.mean),
            "std": list(config.std),
            "crop_pct": config.crop_pct,
            "interpolation": config.interpolation,
        },
    }
    with atomic_directory(path) as tmp:
        atomic_write_json(tmp / CONFIG_JSON, timm_config)
        save_file(tensors, tmp / SAFETENSORS_WEIGHTS, metadata=metadata)


def _fields_json(config: MixerConfig) -> str:
    return json.dumps(config_fields(config))


def stored_fields(metadata: Mapping[str, str], source: Any) -> dict[str, Any]:
    """Config fields an mlpmixer stored in a timm safetensors file's metadata (timm ignores it)."""
    if STORED_FIELDS_KEY not in metadata:
        return {}
    try:
        data = json.loads(metadata[STORED_FIELDS_KEY])
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{source}: unreadable {STORED_FIELDS_KEY} metadata ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: {STORED_FIELDS_KEY} metadata is not a mapping")
    return fields_from(data)
