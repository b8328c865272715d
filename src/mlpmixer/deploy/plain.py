"""The float model every quantizer starts from: the same weights in the plain layers.

`models.fast`'s drop-in layers run their own products (oneDNN, a fused GELU kernel) that the
quantizers cannot see into; the plain layers are ``nn.Linear``/``nn.GELU``/``nn.LayerNorm``,
which torchao swaps and torch.export traces. The state dicts are the same, so the copy is a
load, not a conversion.
"""

from __future__ import annotations

from torch import nn

from ..models.base import MlpFamilyModel
from ..models.config import MixerConfig
from ..models.family import family_class


def plain_model(config: MixerConfig) -> MlpFamilyModel:
    """A model of ``config`` with plain layers (fresh weights), in eval mode."""
    return family_class(config.family)(config, fast=False).eval()


def plain_copy(model: MlpFamilyModel) -> MlpFamilyModel:
    """``model``'s weights in a plain-layer model of its config, in eval mode (``model`` is
    left as it is)."""
    copy = plain_model(model.config)
    copy.load_state_dict(model.state_dict())
    return copy


def linear_names(model: nn.Module) -> list[str]:
    """The names of ``model``'s ``nn.Linear`` modules, in order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
