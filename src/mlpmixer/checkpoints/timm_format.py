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
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_directory, atomic_path, atomic_write_json
from ..layout import CONFIG_JSON, SAFETENSORS_SUFFIX, SAFETENSORS_WEIGHTS, TORCH_SUFFIXES
from ..models.config import MixerConfig
from ..models.registry import list_models, model_config
from ..models.spec import TimmNames, families, family_spec
from .metadata_fields import stored_metadata
from .model_card import timm_card

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


def timm_names(family: str) -> TimmNames:
    """timm's names for ``family`` (its spec's); a `ConfigError` if timm has no such family."""
    names = family_spec(family).timm
    if names is None:
        raise ConfigError(f"timm has no {family!r} models: no timm key names to convert to")
    return names


def timm_family(state: Mapping[str, torch.Tensor]) -> str | None:
    """The family of a timm state dict, or None if it is not one of timm's Mixer-family models.

    A family's spec gives the keys only its timm state dicts have (``TimmNames.markers``);
    families sharing key names (Mixer, gMixer) are told apart by the spec's ``claims`` on the
    state under this package's names (gMixer's second layers read half the first's width).
    """
    for spec in families():
        if spec.timm is None or not all(key in state for key in spec.timm.markers):
            continue
        if spec.claims is None or spec.claims(rename_block_keys(state, spec.timm.block_names)):
            return spec.name
    return None


def timm_to_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm key names and layouts -> this package's (any family)."""
    names = timm_names(timm_family(state) or "mixer")
    out = rename_block_keys(state, names.block_names)
    return {k: v.flatten() if k.endswith(tuple(names.reshape)) else v for k, v in out.items()}


def state_to_timm(
    state: Mapping[str, torch.Tensor], family: str = "mixer"
) -> dict[str, torch.Tensor]:
    """This package's key names and layouts -> timm's, for a model of ``family``."""
    names = timm_names(family)
    reverse = {ours: theirs for theirs, ours in names.block_names.items()}
    out = rename_block_keys(state, reverse)
    for suffix, shape in names.reshape.items():  # e.g. ResMLP's Affine: (C,) -> (1, 1, C)
        out = {k: v.reshape(shape) if k.endswith(suffix) else v for k, v in out.items()}
    return out


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


README = "README.md"


# A timm model name fixes these (its function passes them to timm's MlpMixer itself, so
# model_args cannot change them: timm raises "got multiple values for keyword argument");
# the image size, channels, classes and, for the Mixer, the MLP ratios go into model_args.
_NAME_FIXES = ("family", "patch_size", "hidden_dim", "num_blocks")  # + TimmNames.name_fixes
TIMM_NORM_EPS = 1e-6  # timm's Mixer, gMixer and gMLP: LayerNorm(eps=1e-6)


@dataclass(frozen=True)
class TimmSpec:
    """How timm builds a model of a config's shape.

    ``architecture``: timm's model name, or ``<family>_custom`` when timm registers none of
    this shape (``unbuildable`` says why); ``model_args``: keywords beyond the name's defaults;
    ``differences``: what timm computes differently with these weights (GELU, epsilon).
    """

    architecture: str
    model_args: dict[str, Any]
    unbuildable: str | None
    differences: tuple[str, ...]


def mlp_ratio(width: int, dim: int) -> float:
    """The float r for which timm's ``int(r * dim)`` gives back ``width`` exactly."""
    ratio = width / dim
    while int(ratio * dim) < width:  # 0.1 * 30 = 2.9999...: step up one float at a time
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def _timm_name(config: MixerConfig) -> str | None:
    fixed = _NAME_FIXES + timm_names(config.family).name_fixes
    for name in list_models(f"{config.family}_*_224"):
        reference = model_config(name)
        if all(getattr(reference, f) == getattr(config, f) for f in fixed):
            return name
    return None


def timm_spec(config: MixerConfig) -> TimmSpec:
    """timm's name and ``model_args`` for ``config``'s shape (see `TimmSpec`)."""
    c = config
    names, unused = timm_names(c.family), family_spec(c.family).unused_fields
    name = _timm_name(c)
    reference = model_config(name) if name else MixerConfig(family=c.family)
    args: dict[str, Any] = {}
    if name is None:
        args |= {"patch_size": list(c.patch_size), "num_blocks": c.num_blocks}
        args["embed_dim"] = c.hidden_dim
    if c.img_size != reference.img_size:
        args["img_size"] = c.img_size[0] if c.img_size[0] == c.img_size[1] else list(c.img_size)
    if c.in_chans != 3:
        args["in_chans"] = c.in_chans
    widths = (c.tokens_mlp_dim, c.channels_mlp_dim)
    if names.any_shape and (
        name is None or widths != (reference.tokens_mlp_dim, reference.channels_mlp_dim)
    ):
        args["mlp_ratio"] = [mlp_ratio(w, c.hidden_dim) for w in widths]
    unbuildable = None
    if name is None:
        unbuildable = (
            f"timm registers no {c.family} model with patches {_pair(c.patch_size)}, "
            f"{c.num_blocks} block{'s' * (c.num_blocks != 1)} and width {c.hidden_dim}"
            + ("" if names.any_shape else " (and these MLP widths)")
        )
    differences = []
    if c.gelu != "none" and "gelu" not in unused:
        differences.append(f"timm uses the exact (erf) GELU, this model gelu={c.gelu!r}")
    if c.norm_eps != TIMM_NORM_EPS and "norm_eps" not in unused:
        differences.append(f"timm's LayerNorm epsilon is 1e-6, this model's {c.norm_eps:g}")
    return TimmSpec(name or f"{c.family}_custom", args, unbuildable, tuple(differences))


def _pair(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def timm_architecture(config: MixerConfig) -> str:
    """timm's model name for ``config``'s shape (``mixer_b16_224``...), or ``<family>_custom``."""
    return timm_spec(config).architecture


def timm_hub_config(config: MixerConfig, spec: TimmSpec) -> dict[str, Any]:
    """timm's ``config.json`` for a folder of ``config``'s weights (what ``save_for_hf`` writes:
    the name at the top, the data config in ``pretrained_cfg``, the shape in ``model_args``)."""
    c = config
    body: dict[str, Any] = {
        "architecture": spec.architecture,
        "num_classes": c.num_classes,
        "num_features": c.hidden_dim,
        "global_pool": "avg",
    }
    if spec.model_args:
        body["model_args"] = spec.model_args
    if c.class_names:
        body["label_names"] = list(c.class_names)
    body["pretrained_cfg"] = {
        "custom_load": False,
        "input_size": [c.in_chans, *c.img_size],
        "fixed_input_size": True,
        "interpolation": c.interpolation,
        "crop_pct": c.crop_pct,
        "crop_mode": "center",
        "mean": list(c.mean),
        "std": list(c.std),
        "num_classes": c.num_classes,
        "pool_size": None,
        "first_conv": "stem.proj",
        "classifier": "head",
        "license": family_spec(c.family).paper.license,
    }
    return body


def write_timm(path: Path, config: MixerConfig, state: Mapping[str, torch.Tensor]) -> None:
    """timm key names: ``.pth``/``.pt``/``.bin`` (torch.save), ``.safetensors``, or a hub dir.

    The hub folder is timm's: ``config.json`` as `timm_hub_config`, ``model.safetensors``
    and a ``README.md`` whose metadata says ``library_name: timm`` (a README already in the
    folder is kept).
    """
    from safetensors.torch import save_file

    spec = timm_spec(config)
    if spec.differences:
        warnings.warn(
            f"timm will compute slightly different outputs with these weights: "
            f"{'; '.join(spec.differences)}",
            stacklevel=3,
        )
    tensors = {
        k: v.detach().contiguous().cpu() for k, v in state_to_timm(state, config.family).items()
    }
    if path.suffix in TORCH_SUFFIXES:
        with atomic_path(path) as tmp:
            torch.save(tensors, tmp)
        return
    metadata = {"format": "pt", **stored_metadata(config, tensors)}
    if path.suffix == SAFETENSORS_SUFFIX:
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
        return
    if spec.unbuildable:
        warnings.warn(
            f"{path}: {spec.unbuildable}; timm.create_model cannot load this folder (mlpmixer "
            "can"
            + (
                ", and timm.models.MlpMixer(**model_args) builds it: see its README)"
                if timm_names(config.family).any_shape
                else ")"
            ),
            stacklevel=3,
        )
    # a timm hub-layout directory, written as a whole (built aside, then renamed into place):
    # a kill never leaves a new config.json next to old weights
    card = timm_card(config, spec.architecture, spec.model_args, spec.unbuildable)
    with atomic_directory(path) as tmp:
        atomic_write_json(tmp / CONFIG_JSON, timm_hub_config(config, spec))
        save_file(tensors, tmp / SAFETENSORS_WEIGHTS, metadata=metadata)
        if not (path / README).exists():  # like save_pretrained: a user's own card is kept
            (tmp / README).write_text(card, encoding="utf-8")
