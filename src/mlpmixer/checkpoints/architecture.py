"""The architecture of a state dict (this package's key names): its family and config.

Every foreign format is first translated to the package's key names; the architecture then
follows from the keys and shapes alone: the family is the one whose spec's ``markers`` (and
``claims``, for families that share key names) the state dict has (`FamilySpec.matches`);
its ``config_from_state`` reads the config off the shapes (for the Mixer families:
models/state_shapes.py). The image size follows from the shapes when the patch grid is
square; otherwise the caller passes ``img_size``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.spec import FamilySpec, families


def has_family_keys(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` has the marker keys of any family (this package's names)."""
    return any(all(key in state for key in spec.markers) for spec in families())


def infer_family(state: Mapping[str, torch.Tensor]) -> FamilySpec:
    """The spec of the family whose key names (and shapes) ``state`` has."""
    found = [spec for spec in families() if spec.matches(state)]
    if not found:
        markers = sorted({key for spec in families() for key in spec.markers})
        raise CheckpointError(
            f"checkpoint has none of the families' marker keys ({', '.join(markers)}): "
            "not a checkpoint of a known family, or truncated"
        )
    if len(found) > 1:  # two specs claiming the same state dict: a defect of the specs
        names = ", ".join(spec.name for spec in found)
        raise CheckpointError(f"checkpoint matches several families ({names})")
    return found[0]


def infer_config(state: Mapping[str, torch.Tensor], img_size: Any = None, **fields: Any) -> Any:
    """The config whose parameters have exactly the shapes in ``state``.

    The family follows from the key names (`infer_family`). ``fields`` (e.g. ``gelu``,
    ``mean``) fill in what shapes cannot tell.
    """
    return infer_family(state).config_from_state(state, img_size, fields)
