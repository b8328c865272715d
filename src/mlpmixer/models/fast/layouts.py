"""A linear layer's training products with the left operand column-major, for CPUs that
emulate bf16.

Where a CPU has no bf16 instructions (AVX2-only x86, AVX-512 without AVX512_BF16), ATen
computes bf16 products with its own reference GEMM loops, and their speed depends on the
operands' layouts far more than on the work: under the AVX2 caps on an AMD EPYC (torch 2.13,
one thread), the product (392, 512) @ (512, 2048) took 1210 ms with both operands row-major,
44 ms with the right one column-major (``x @ W.t()``, a linear's forward) and 24 ms with the
left one column-major (``dYᵀ @ X``, its weight gradient); every S/16 shape ranked the same way.
A linear's input gradient ``dY @ W`` is the row-major/row-major product: in a bf16 training
step it was most of the time, for timm's model and for ours.

`linear` computes ``x @ Wᵀ + b`` and both gradients with every product's left operand
column-major: the forward from a column-major copy of ``x`` (made in the same pass as the
autocast cast) and a row-major ``Wᵀ`` (a weight-sized copy), ``dX`` from a column-major copy
of ``dY``, ``dW = dYᵀ @ X`` as autograd computes it. The copies are passes over activations;
the products they spare are GEMMs. With native bf16 (oneDNN) the layouts cost the same, and
the copies only cost: the piece is decided per dtype and shape (`choice`: plain on the CPUs
with rules, a probe elsewhere) and used only where it wins; ``MLPMIXER_LAYOUTS=0`` switches it
off (the token products' `token_linear.LAYOUTS` form with it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import pieces

PIECE = "training product layouts"
LEFT_COLUMN_MAJOR, PLAIN = "left operands column-major", "F.linear"
CANDIDATES = (LEFT_COLUMN_MAJOR, PLAIN)
SWITCH = "MLPMIXER_LAYOUTS"  # ``=0``: off (read when deciding)
PROBE_ROWS = 32  # (the emulated row-major product takes ~0.1 s at S/16's widths)
_REDUCED = (torch.bfloat16, torch.float16)


def contiguous_as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` as ``dtype``, contiguous: the cast and the copy in one pass (a same-dtype ``.to``
    keeps a view's strides, hence the ``.contiguous()``)."""
    if dtype != t.dtype:
        t = t.to(dtype, memory_format=torch.contiguous_format)
    return t.contiguous()


def column_major(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``t`` (M, K) as ``dtype`` with column-major strides (1, M): no copy if it is already."""
    return contiguous_as(t.t(), dtype or t.dtype).t()


class _LeftColumnMajor(torch.autograd.Function):
    """x (M, K) column-major @ weightᵀ + bias, and its gradients, left operands column-major."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        right = weight.t().contiguous()  # (K, N) row-major
        return torch.mm(x, right) if bias is None else torch.addmm(bias, x, right)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        dx = torch.mm(column_major(grad), weight) if needs_x else None
        dw = torch.mm(grad.contiguous().t(), x.contiguous()) if needs_w else None  # dYᵀ @ X
        db = grad.sum(0) if ctx.has_bias and needs_b else None
        return dx, dw, db


def usable(*tensors: torch.Tensor) -> bool:
    """Whether ``tensors`` may go through the custom autograd function: plain tensors, not
    ``torch.func`` wrappers or subclasses (those take ``F.linear``)."""
    return all(
        type(t) in (torch.Tensor, torch.nn.Parameter)
        and not torch._C._functorch.is_functorch_wrapped_tensor(t)
        for t in tensors
    )


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` computed in ``dtype`` (autocast's, or the operands' own)
    with the products' left operands column-major: x (M, K) of any strides -> (M, N) row-major.

    The casts are autograd's (as autocast's are): fp32 master weights get fp32 gradients.
    """
    x = column_major(x, dtype)
    bias = bias.to(dtype) if bias is not None else None
    return _LeftColumnMajor.apply(x, weight.to(dtype), bias)


def rule(kind: str) -> str:
    """The CPUs with rules have native bf16 (oneDNN's products, which take every layout at
    the same speed: S/16 shapes within 10% natively on the EPYC): the plain linear."""
    del kind
    return PLAIN


def choice(dtype: torch.dtype, in_features: int, out_features: int) -> str:
    """`LEFT_COLUMN_MAJOR` or `PLAIN` for an MLP's two training products in ``dtype``:
    (in -> out), then (out -> in).

    Asked only for reduced dtypes (bf16, fp16): fp32 products go to MKL or oneDNN, whose
    speed does not hang on the layouts. The probe times a forward and backward of the pair at
    `PROBE_ROWS` rows against ``F.linear``'s, after checking the output and all five
    gradients against it.
    """
    if dtype not in _REDUCED:
        return PLAIN

    def probe() -> dict[str, Callable[[], torch.Tensor]]:
        g = torch.Generator().manual_seed(0)

        def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
            return (torch.randn(*shape, generator=g) * scale).to(dtype).requires_grad_()

        x = randn(PROBE_ROWS, in_features)
        w1, b1 = randn(out_features, in_features, scale=in_features**-0.5), randn(out_features)
        w2, b2 = randn(in_features, out_features, scale=out_features**-0.5), randn(in_features)
        grad = torch.randn(PROBE_ROWS, in_features, generator=g).to(dtype)
        operands = (x, w1, b1, w2, b2)

        def step(product: Callable[..., torch.Tensor]) -> torch.Tensor:
            out = product(product(x, w1, b1), w2, b2)
            grads = torch.autograd.grad(out, operands, grad)
            return torch.cat([t.detach().flatten() for t in (out, *grads)])

        return {
            LEFT_COLUMN_MAJOR: lambda: step(lambda *a: linear(*a, dtype)),
            PLAIN: lambda: step(F.linear),
        }

    case = f"{str(dtype).removeprefix('torch.')}, {in_features}x{out_features}"
    return pieces.decide(PIECE, case, CANDIDATES, probe, rule=rule, switch=SWITCH, tolerance=2e-2)
