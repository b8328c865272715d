"""torchao's weight-only and dynamic int8: each chosen ``nn.Linear``'s weight becomes an int8
tensor subclass (int8 rows, one float scale per output row), in place.

Weight-only keeps float activations (the product dequantizes the weight); dynamic quantizes
each token row of the input at run time with its own symmetric scale (per-token scales, the
first fix Q-MLP and SmoothQuant name for MLPs' wide activation ranges).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .extra import torchao_module


def torchao_config(method: str) -> object:
    """torchao's config object for ``weight-only`` or ``dynamic``."""
    quantization = torchao_module("torchao.quantization")
    if method == "weight-only":
        return quantization.Int8WeightOnlyConfig()
    return quantization.Int8DynamicActivationInt8WeightConfig()


def quantize_linears(model: nn.Module, method: str, keep: Iterable[str]) -> list[str]:
    """Quantize ``model``'s Linears in place, except those named in ``keep`` (or inside them).

    Returns the names of the Linears quantized.
    """
    quantization = torchao_module("torchao.quantization")
    kept = tuple(keep)
    done: list[str] = []

    def chosen(module: nn.Module, name: str) -> bool:
        take = isinstance(module, nn.Linear) and not inside(name, kept)
        if take:
            done.append(name)
        return take

    quantization.quantize_(model, torchao_config(method), filter_fn=chosen)
    return done


def inside(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether module ``name`` is one of ``prefixes`` or inside one."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_quantized(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is one of torchao's quantized tensor subclasses (a plain tensor or
    parameter is not; a subclass says what it is made of through ``__tensor_flatten__``)."""
    return type(tensor) not in (torch.Tensor, nn.Parameter) and hasattr(
        tensor, "__tensor_flatten__"
    )


def inner_tensors(tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """The plain tensors a quantized weight is made of (``qdata`` int8, ``scale``, ...)."""
    names, _ = tensor.__tensor_flatten__()
    return {n: getattr(tensor, n) for n in names if getattr(tensor, n) is not None}
