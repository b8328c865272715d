"""Which layers hurt when quantized: each one alone in int8 (the rest float), and the range
of the activations it reads (wide ranges with rare outliers are what per-tensor int8 loses,
Q-MLP's and SmoothQuant's finding for MLPs). The layers are those the method quantizes: the
Linears for weight-only and dynamic (torchao's), the Linears and convolutions for static
(the zoo's 1x1-convolution mixing layers); each is named by its kind from the family's spec
(`models.spec.layer_kind`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..models.spec import family_spec, layer_kind
from .accuracy import logits
from .plain import default_keep, plain_copy
from .quantize import quantize


@dataclass(frozen=True)
class LayerSensitivity:
    """``layer``: the module's name; ``kind``: what it does, one of
    `models.spec.LAYER_KINDS` (token-mixing, channel-mixing, reweight, downsample, ...);
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


def kind_of(name: str, family: str) -> str:
    """What module ``name`` of a ``family`` model does (token-mixing, channel-mixing,
    reweight, stem, downsample, head), as the family's spec declares it."""
    return layer_kind(family_spec(family), name)


def quantizable_names(model: nn.Module, method: str) -> list[str]:
    """The modules ``method`` can make int8, in order: ``nn.Linear`` for torchao's
    weight-only and dynamic, also ``nn.Conv2d`` for static (X86InductorQuantizer's)."""
    types = (nn.Linear, nn.Conv2d) if method == "static" else (nn.Linear,)
    return [name for name, m in model.named_modules() if isinstance(m, types)]


@torch.no_grad()
def input_ranges(
    model: nn.Module, images: torch.Tensor, names: list[str]
) -> dict[str, tuple[float, float]]:
    """(max |x|, 99.9th percentile of |x|) of each of ``names``' input over ``images``."""
    seen: dict[str, list[torch.Tensor]] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[name].register_forward_pre_hook(
            lambda m, args, n=name: seen.setdefault(n, []).append(args[0].detach().abs().flatten())
        )
        for name in names
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
    model: nn.Module,
    method: str,
    images: torch.Tensor,
    calibration: torch.Tensor | None = None,
) -> list[LayerSensitivity]:
    """Every layer ``method`` quantizes (`quantizable_names`, but the stem and head kept
    by default) alone in int8, most harmful first. ``images`` (N, C, H, W), normalised."""
    plain = plain_copy(model)
    reference = logits(plain, images)
    keep = default_keep(plain)
    names = [n for n in quantizable_names(plain, method) if n not in keep]
    ranges = input_ranges(plain, images, names)
    rows = []
    for name in names:
        others = tuple(n for n in names if n != name)
        q = quantize(model, method, calibration=calibration, keep_float=(*keep, *others))
        out = logits(q, images)
        rows.append(LayerSensitivity(
            layer=name, kind=kind_of(name, model.config.family),
            max_abs_dlogit=(out - reference).abs().max().item(),
            agreement=(out.argmax(1) == reference.argmax(1)).float().mean().item(),
            input_max=ranges[name][0], input_p999=ranges[name][1],
        ))  # fmt: skip
    return sorted(rows, key=lambda r: r.max_abs_dlogit, reverse=True)
