"""The float model every quantizer starts from: the same weights in the plain layers.

`models.fast`'s drop-in layers run their own products (oneDNN, a fused GELU kernel) that the
quantizers cannot see into; the plain layers are ``nn.Linear``/``nn.GELU``/``nn.LayerNorm``,
which torchao swaps and torch.export traces. The state dicts are the same, so the copy is a
load, not a conversion.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.base import MlpFamilyModel
from ..models.family import family_class


def plain_model(config: Any) -> nn.Module:
    """A model of ``config`` (any family's config class) with plain layers (fresh weights), in
    eval mode. Only the Mixer-type families (`MlpFamilyModel`) have fast drop-in layers to
    turn off; the zoo families are built from plain torch layers already."""
    cls = family_class(config.family)
    if isinstance(cls, type) and issubclass(cls, MlpFamilyModel):
        return cls(config, fast=False).eval()
    return cls(config).eval()


def plain_copy(model: nn.Module) -> nn.Module:
    """``model``'s weights in a plain-layer model of its config, in eval mode (``model`` is
    left as it is)."""
    copy = plain_model(model.config)
    copy.load_state_dict(model.state_dict())
    return copy


def linear_names(model: nn.Module) -> list[str]:
    """The names of ``model``'s ``nn.Linear`` modules, in order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def default_keep(model: nn.Module) -> tuple[str, ...]:
    """The modules every method keeps in float: the patch stem (the model's first
    convolution, on 1-3 raw channels: little work, most of the error) and the classifier
    (its name from the family's spec). ``("stem.proj", "head")`` for the Mixer-type families,
    ``("patch_embed.proj", "head")`` for the zoo's."""
    from ..models.spec import family_spec

    stem = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    head = family_spec(model.config.family).classifier
    return (stem, head) if stem is not None else (head,)


def has_free_linears(model: nn.Module, keep: tuple[str, ...] | None = None) -> bool:
    """Whether ``model`` has an ``nn.Linear`` outside ``keep`` (default `default_keep`):
    what torchao's weight-only and dynamic int8 can quantize. False for the families that mix
    with 1x1 convolutions (AS-MLP, Wave-MLP, Hire-MLP)."""
    kept = default_keep(model) if keep is None else keep
    return any(not any(n == k or n.startswith(k + ".") for k in kept) for n in linear_names(model))
