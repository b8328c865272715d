"""Which Linears hurt when quantized: each one alone in int8 (the rest float), and the range
of the activations it reads (wide ranges with rare outliers are what per-tensor int8 loses,
Q-MLP's and SmoothQuant's finding for MLPs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..models.base import MlpFamilyModel
from .accuracy import logits
from .plain import default_keep, linear_names, plain_copy
from .quantize import quantize


@dataclass(frozen=True)
class LayerSensitivity:
    """``layer``: the Linear's name; ``kind``: token-mixing, channel-mixing or other;
    ``max_abs_dlogit`` / ``agreement``: the model with only this layer in int8, against fp32;
    ``input_max`` / ``input_p999``: the largest |input| and its 99.9th percentile (their
    ratio: how outlier-heavy the input is)."""

    layer: str
    kind: str
    max_abs_dlogit: float
    agreement: float
    input_max: float
    input_p999: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kind_of(name: str) -> str:
    """Token-mixing (across patches) or channel-mixing, from the layer's name."""
    if "token" in name or "spatial" in name:
        return "token-mixing"
    return "channel-mixing" if name.startswith("blocks.") else "other"


@torch.no_grad()
def input_ranges(model: nn.Module, images: torch.Tensor) -> dict[str, tuple[float, float]]:
    """(max |x|, 99.9th percentile of |x|) of each Linear's input over ``images``."""
    seen: dict[str, list[torch.Tensor]] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[name].register_forward_pre_hook(
            lambda m, args, n=name: seen.setdefault(n, []).append(args[0].detach().abs().flatten())
        )
        for name in linear_names(model)
    ]
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
    ranges = {}
    for name, parts in seen.items():
        values = torch.cat(parts)
        sample = values[torch.randperm(values.numel())[: 1 << 20]]  # quantile's size limit
        ranges[name] = (values.max().item(), torch.quantile(sample, 0.999).item())
    return ranges


def layer_sensitivity(
    model: MlpFamilyModel,
    method: str,
    images: torch.Tensor,
    calibration: torch.Tensor | None = None,
) -> list[LayerSensitivity]:
    """Every quantizable Linear alone in int8 by ``method``, most harmful first."""
    plain = plain_copy(model)
    reference = logits(plain, images)
    ranges = input_ranges(plain, images)
    keep = default_keep(plain)
    names = [n for n in linear_names(plain) if n not in keep]
    rows = []
    for name in names:
        others = tuple(n for n in names if n != name)
        q = quantize(model, method, calibration=calibration, keep_float=(*keep, *others))
        out = logits(q, images)
        rows.append(LayerSensitivity(
            layer=name, kind=kind_of(name),
            max_abs_dlogit=(out - reference).abs().max().item(),
            agreement=(out.argmax(1) == reference.argmax(1)).float().mean().item(),
            input_max=ranges[name][0], input_p999=ranges[name][1],
        ))  # fmt: skip
    return sorted(rows, key=lambda r: r.max_abs_dlogit, reverse=True)
