"""A model from a state dict: whether the weights fit a config, and config overrides at load.

Pure (tensors and configs in, a model out, no file I/O), so `from_state_dict` and `resize`
work with `mlpmixer.checkpoints` never imported. The checkpoint formats (checkpoints/)
translate foreign key names into this package's, then call these, with messages that name
the offending keys and shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .spec import family_spec

_SHOWN = 8  # keys listed in an error message before "... and N more"


def _listing(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def _is_float(tensor: Any) -> bool:
    return not isinstance(tensor, torch.Tensor) or torch.is_floating_point(tensor)


def check_state_fits(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any]) -> None:
    """Raise `CheckpointError` naming missing/unexpected keys and mismatched shapes."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched)}")
    if problems:
        raise CheckpointError("checkpoint does not fit the model; " + "; ".join(problems))
    # integer buffers (BatchNorm's num_batches_tracked) stay integers; weights are floats
    bad_dtype = [
        k for k, v in state.items()
        if not torch.is_floating_point(v) and _is_float(expected[k])
    ]  # fmt: skip
    if bad_dtype:
        raise CheckpointError(f"checkpoint tensors are not floating point: {_listing(bad_dtype)}")


def replaced(config: Any, **changes: Any) -> Any:
    """A validated copy of a family config (any config dataclass) with some fields changed."""
    known = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ConfigError(f"unknown {type(config).__name__} field(s) {unknown}; known: {known}")
    return dataclasses.replace(config, **changes)


def apply_overrides(config: Any, overrides: Mapping[str, Any], reset_head: bool = False) -> Any:
    """The stored ``config`` with the caller's ``overrides`` applied, validated.

    A different ``num_classes`` needs ``reset_head=True`` (fine-tuning: the stored class
    names are dropped with the head); for a family with a fixed token count (one with a
    resize rule), a different token count needs an explicit `MlpFamilyModel.resize` after
    loading, since it changes the token-mixing weights.
    """
    overrides = dict(overrides)
    new_classes = overrides.get("num_classes", config.num_classes)
    if new_classes != config.num_classes and not reset_head:
        raise CheckpointError(
            f"the checkpoint has {config.num_classes} classes but num_classes={new_classes} "
            "was asked; pass reset_head=True to replace the head with a fresh one (on the "
            "command line, mlpmixer finetune --checkpoint does)"
        )
    if reset_head and "class_names" in {f.name for f in dataclasses.fields(config)}:
        overrides.setdefault("class_names", None)
    new = replaced(config, **overrides) if overrides else config
    if family_spec(config.family).resize is not None and new.num_tokens != config.num_tokens:
        raise CheckpointError(
            f"img_size={new.img_size} gives {new.num_tokens} tokens but the checkpoint's token "
            f"mixing expects {config.num_tokens} (img_size {config.img_size}); load it as it is, "
            "then call model.resize(img_size)"
        )
    return new


def _load_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float32 for weights, whatever the file stored; integer buffers keep their type."""
    return torch.float32 if torch.is_floating_point(tensor) else tensor.dtype


def model_from_state(
    state: Mapping[str, torch.Tensor],
    config: Any,
    reset_head: bool = False,
    model_class: Any = None,
) -> nn.Module:
    """A model of ``config``'s family (or ``model_class``) holding ``state`` (our key names).

    Missing or unexpected keys and shape mismatches raise `CheckpointError` naming them.
    ``reset_head=True`` ignores the stored head and keeps a fresh zero-initialised one.
    """
    spec = family_spec(config.family)
    build = model_class or spec.model
    # Built on the meta device: random init of weights that are overwritten at once was
    # ~90% of the load time (B/16: seconds). The checkpoint's tensors are then assigned as
    # the parameters (copied to float32, so the model never aliases the caller's tensors,
    # e.g. the source model's in `resize`).
    with torch.device("meta"):
        model = build(config)
    head = spec.classifier + "."
    if reset_head:
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    expected = model.state_dict()
    if reset_head:
        expected = {k: v for k, v in expected.items() if not k.startswith(head)}
    check_state_fits(state, expected)
    owned = {
        k: v.detach().to(dtype=_load_dtype(v), device="cpu", copy=True).contiguous()
        for k, v in state.items()
    }
    model.load_state_dict(owned, strict=not reset_head, assign=True)
    if _left_on_meta(model, head):
        # a buffer no state dict holds (non-persistent, computed by the constructor, e.g.
        # CycleMLP's shifts) stayed on meta: build the model for real and copy the weights in
        model = build(config)
        model.load_state_dict(owned, strict=not reset_head)
    if reset_head:
        model.reset_classifier(config.num_classes)  # real zeros, not meta
        model.config = config
    return model


def _left_on_meta(model: nn.Module, head: str) -> list[str]:
    """Names of ``model``'s tensors still on the meta device (the head's left out)."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, t in tensors if t.is_meta and not name.startswith(head)]
