"""`PlainMixer`: `MlpMixer` built from the plain layers, the reference the fast layers are held to.

The same class as `MlpMixer` with ``fast=False``: a Conv2d stem, "transpose, nn.Linear over
tokens, transpose back", ``nn.LayerNorm``, ``nn.GELU`` and ``nn.Linear`` (models/layers.py).
Its state dict is `MlpMixer`'s, so ``PlainMixer.from_model(model)`` copies any Mixer.
Used by ``mlpmixer bench --compare plain`` and the equivalence tests.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .config import MixerConfig
from .mixer import MlpMixer


class PlainMixer(MlpMixer):
    """``MlpMixer(config, fast=False)``."""

    def __init__(self, config: MixerConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, fast=False, **kwargs)

    @classmethod
    def from_model(cls, model: nn.Module) -> PlainMixer:
        """A plain copy of ``model`` (an `MlpMixer`): same config, weights, device and dtype."""
        plain = cls(model.config)
        plain.load_state_dict(model.state_dict())
        param = next(model.parameters())
        return plain.to(device=param.device, dtype=param.dtype).train(model.training)
