"""Exponential moving average of the weights: ema = decay · ema + (1 − decay) · weights.

torch's `AveragedModel` does the averaging (`get_ema_multi_avg_fn`: one fused lerp per
device and dtype); `ModelEma` fixes the three choices a run depends on:

* the average starts at the weights it is built from (AveragedModel would instead copy the
  weights at the first update, dropping that first step's average);
* buffers are copied as they are, not averaged (``use_buffers=False``);
* saved and restored as the averaged model's own state dict, with the model's names (what
  run directories have always held in ``last.pt['ema']``), so resumed runs continue the
  same average, bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class ModelEma:
    """A frozen copy of a model whose parameters track an EMA of the live ones, updated after
    every optimizer step (`update`); ``module`` is the averaged model, in eval mode."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.average = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False
        )
        # the copy is the average's first term: the first update averages instead of copying
        self.average.n_averaged.fill_(1)
        self.module = self.average.module.eval().requires_grad_(False)

    def update(self, model: nn.Module) -> None:
        """Average in ``model``'s parameters; copy its buffers."""
        self.average.update_parameters(model)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
