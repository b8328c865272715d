"""Low-precision copies of weights kept between inference calls under CPU autocast.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` every product casts its fp32 weight to
bf16 at every call (autocast's own cache lives only until the autocast region exits, and
skips views such as an expanded weight): every parameter cast again at every forward pass, a
visible share of a bf16 inference step (measured: docs/performance.md). `cached` returns a
kept copy instead; the fast layers ask for it where they resolved this path (CPU autocast
inference, grad disabled, fp32 parameters, `use`).

The copy is stored on the module (never in its state dict) under a key of the parameter's
identity, storage address, dtype target and autograd version counter, so it is rebuilt after
anything that changes the weight through PyTorch: optimizer steps, ``load_state_dict``,
in-place updates under ``torch.no_grad()``, ``.to()``, assigning a new parameter or
``param.data = ...``. Like autograd's own checks, it cannot see in-place writes through
``param.data`` (``p.data.mul_(…)``): call `clear` on the model after such writes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import pieces

_ATTR = "_autocast_weight_cache"


def cached(module: nn.Module, name: str, dtype: torch.dtype) -> torch.Tensor | None:
    """``getattr(module, name)`` as a cached ``dtype`` copy, no checks: for a layer that resolved
    this path for its case (CPU autocast inference, fp32 parameters; `use`)."""
    param = getattr(module, name)
    if param is None:
        return None
    key = (id(param), param.data_ptr(), param._version, dtype)
    cache = module.__dict__.setdefault(_ATTR, {})
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        hit = (key, param.detach().to(dtype))
        cache[name] = hit
    return hit[1]


def clear(model: nn.Module) -> None:
    """Drop every cached copy in ``model`` (after in-place writes through ``param.data``)."""
    for module in model.modules():
        module.__dict__.pop(_ATTR, None)


def plain_linear(module: nn.Module) -> bool:
    """A plain ``nn.Linear`` without hooks: a replaced or wrapped module (LoRA, quantised, hooked)
    must be called itself, so no fast path may read its weights directly."""
    return type(module) is nn.Linear and not module._forward_hooks and not module._forward_pre_hooks


PIECE = "autocast weight cache"


def use(dtype: torch.dtype) -> bool:
    """Whether CPU autocast inference to ``dtype`` keeps cast weights between calls here."""

    def probe() -> dict[str, Callable[[], torch.Tensor]]:
        g = torch.Generator().manual_seed(0)
        layer = nn.Linear(1024, 1024)  # one row: what the cache saves (the cast) is visible
        x = torch.randn(1, 1024, generator=g)

        def run(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=dtype), torch.no_grad():
                return torch.nn.functional.linear(x, w, b)

        return {
            "cached": lambda: run(cached(layer, "weight", dtype), cached(layer, "bias", dtype)),
            "cast per call": lambda: run(layer.weight, layer.bias),
        }

    case = str(dtype).removeprefix("torch.")
    names = ("cached", "cast per call")
    # Not probed: the cached copy is the cast autocast makes, so the product is the same and
    # only the cast is saved. Its probe was noise (0.60x-1.51x across runs on the EPYC, a
    # steady loop 1.9x: one row, 1024x1024 bf16); kept to measure by hand.
    why = "the same product without the weight cast at every call"
    return pieces.decide(PIECE, case, names, probe, everywhere=why) == "cached"
