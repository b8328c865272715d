"""The token-mixing Linear ``W · x + b`` on (B, S, C): weight from the left, bias along the channel axis.

``torch.baddbmm(b[:, None], W.expand(B, ...), x)`` adds the bias inside the product, which is
free in float32 but not in bfloat16 on CPU: the bias inside the bf16 product costs more than adding it
afterwards (measurements: docs/performance.md).
So reduced-precision CPU products run as ``bmm`` and an in-place bias add; everything else
(float32, float64, GPUs) keeps ``baddbmm``. The in-place add is on the product's own output,
which autograd does not save, so gradients are unchanged. Whether the split earns its place is
decided once per dtype and shape (`split_choice`: a rule on the CPUs it was measured on, a
probe elsewhere); the layers pass the answer as ``split``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import pieces
from .aside import traced

_REDUCED = (torch.bfloat16, torch.float16)


def _product_dtype(weight: torch.Tensor, x: torch.Tensor) -> torch.dtype:
    """The dtype ``bmm(weight, x)`` computes in: autocast's, or the operands' own."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return torch.result_type(weight, x)


def split_bias(weight: torch.Tensor, x: torch.Tensor) -> bool:
    """True where the bias is added after a plain ``bmm`` (reduced precision on CPU, eager)."""
    if x.device.type != "cpu" or traced():
        return False
    return _product_dtype(weight, x) in _REDUCED


PIECE = "token products: bias after the product"
AFTER, INSIDE = "bmm, then the bias", "baddbmm"


def split_choice(dtype: torch.dtype, m: int, k: int, n: int) -> bool:
    """Whether (M, K) @ (B, K, N) + bias in reduced precision ``dtype`` adds the bias after."""

    def probe() -> dict[str, Callable[[], torch.Tensor]]:
        g = torch.Generator().manual_seed(0)
        w, b = torch.randn(m, k, generator=g).to(dtype), torch.randn(m, generator=g).to(dtype)
        x = torch.randn(1, k, min(n, 256), generator=g).to(dtype)  # (cheap: one image)
        ww = w.expand(1, -1, -1)
        return {
            AFTER: lambda: torch.bmm(ww, x).add_(b[:, None]),
            INSIDE: lambda: torch.baddbmm(b[:, None], ww, x),
        }

    case = f"{str(dtype).removeprefix('torch.')}, {m}x{k} @ {k}x{n}"
    choice = pieces.decide(
        PIECE, case, (AFTER, INSIDE), probe, rule=lambda kind: AFTER, tolerance=2e-2
    )
    return choice == AFTER


def token_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, split: bool | None = None
) -> torch.Tensor:
    """``weight @ x[i] + bias[:, None]`` for every i: weight (M, K), bias (M,), x (B, K, N) -> (B, M, N).

    ``split``: add the bias after the product (None: where `split_bias` says it may).
    """
    w = weight.expand(x.shape[0], -1, -1)  # broadcast over the batch, no copy
    if bias is None:
        return torch.bmm(w, x)
    if split if split is not None else split_bias(weight, x):
        return torch.bmm(w, x).add_(bias[:, None])
    return torch.baddbmm(bias[:, None], w, x)
