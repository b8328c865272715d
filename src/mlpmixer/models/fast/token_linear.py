"""The token-mixing Linear ``W · x + b`` on (B, S, C): weight from the left, bias along the channel axis.

Four forms compute it, the plain one last (`FORMS`, in the order listed below them, and
`LAYOUTS`, for training in reduced precision only):

* `ONE_LINEAR`: ``F.linear(x.mT, W, b).mT``, one product over the (B·C, S) matrix, as the plain
  layer (and timm) computes it. Two in a row (fc1, fc2) transpose the activations once: fc2
  reads fc1's output back in the layout fc1 wrote it. Where bf16 products are emulated (no
  AVX512_BF16/AMX), this one large product beat the per-image products of the other forms by
  far (AVX2 caps, S/16 batch 16: the token products had taken as long as the 8x larger
  channel products, as per-image ``addmm_`` inside ``bmm``; the pair measured 4-5x faster).
* `AFTER`: ``bmm(W.expand(B, ...), x)`` then the bias added in place (its own output, which
  autograd does not save): in bf16 on CPU the bias inside the product costs more than after.
* `INSIDE`: ``baddbmm(b[:, None], W.expand(B, ...), x)``: no transposed copy of the
  activations; the bias free inside the fp32 product.
* `LAYOUTS` (training, bf16/fp16): the one linear with every product's left operand
  column-major (`layouts.linear`): where bf16 is emulated, ATen's GEMM loops run that layout
  fastest, and ``baddbmm``'s forward (W row-major @ x row-major, per image) slowest: under the
  AVX2 caps, S/16 token shapes, a linear's forward and backward 3.5x faster than
  ``F.linear``'s, whose input gradient is the row-major/row-major product.

Which form runs is decided once per dtype, mode (inference / training) and shape
(`form_choice`: a rule on the CPUs the forms were measured on, a probe elsewhere); the layers
pass the answer as ``form``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import layouts, pieces
from .aside import traced

_REDUCED = (torch.bfloat16, torch.float16)

PIECE = "token products"
ONE_LINEAR, AFTER, INSIDE = "one linear over (B·C, S)", "bmm, then the bias", "baddbmm"
FORMS = (AFTER, ONE_LINEAR, INSIDE)  # (``MLPMIXER_PIECES=on`` takes a dtype's first)
LAYOUTS = "one linear over (B·C, S), left operands column-major"
PROBE_IMAGES = 2  # (a batch, so that the per-image products of bmm show; cheap columns)
PROBE_COLUMNS = 256


def _product_dtype(weight: torch.Tensor, x: torch.Tensor) -> torch.dtype:
    """The dtype ``bmm(weight, x)`` computes in: autocast's, or the operands' own."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return torch.result_type(weight, x)


def split_bias(weight: torch.Tensor, x: torch.Tensor) -> bool:
    """True where the bias is added after a plain ``bmm`` (reduced precision on CPU, eager):
    the form used where no decision was passed in."""
    if x.device.type != "cpu" or traced():
        return False
    return _product_dtype(weight, x) in _REDUCED


def candidates(dtype: torch.dtype, training: bool = False) -> tuple[str, ...]:
    """The forms worth asking about in ``dtype`` (the bias after and the column-major left
    operands pay only in reduced ones; the latter's custom backward only in training)."""
    if dtype not in _REDUCED:
        return (ONE_LINEAR, INSIDE)
    if training and not pieces.switched_off(layouts.SWITCH):
        return (AFTER, LAYOUTS, ONE_LINEAR, INSIDE)
    return FORMS


def rule(kind: str, dtype: torch.dtype, training: bool) -> str:
    """The form on a CPU the forms were measured on (`cpu_kind.measured_kind`).

    ``baddbmm`` in fp32, the bias after in bf16/fp16, in both modes: on an AMD EPYC Zen 4 with
    AVX512_BF16 (torch 2.13, one thread, a token MLP's two products with GELU at batch 16) the
    one linear measured 0.78-0.88x (fp32) and 0.81-1.03x (bf16) of ``baddbmm``, and the
    bias after 0.92-1.07x in bf16 (kept from the earlier whole-step profile, 2% of a step).
    Intel (Sapphire Rapids) keeps the forms measured there before the one linear existed.
    The one linear wins where bf16 products are emulated (4-5x under the AVX2 caps), a CPU
    without a rule: its probe finds it.
    """
    del kind, training
    return AFTER if dtype in _REDUCED else INSIDE


def form_choice(dtype: torch.dtype, training: bool, m: int, k: int, n: int) -> str:
    """The form of a token MLP's two products in ``dtype``: (M, K) @ (B, K, N) + bias, then
    (K, M) @ (B, M, N) + bias (training: forward and backward).

    The probe times the pair, as the layer runs it: a form's second product reads the first
    one's output in that form's layout, and the two differ (under the AVX2 caps, S/16 bf16,
    the first product alone measured 1.04x for the one linear without its contiguous copy,
    the pair 1.66x).
    """
    names = candidates(dtype, training)

    def probe() -> dict[str, Callable[[], torch.Tensor]]:
        g = torch.Generator().manual_seed(0)
        w1, b1 = torch.randn(m, k, generator=g).to(dtype), torch.randn(m, generator=g).to(dtype)
        w2, b2 = torch.randn(k, m, generator=g).to(dtype), torch.randn(k, generator=g).to(dtype)
        x = torch.randn(PROBE_IMAGES, k, min(n, PROBE_COLUMNS), generator=g).to(dtype)
        operands = (w1, b1, w2, b2, x)

        def pair(form: str) -> torch.Tensor:
            return token_linear(w2, b2, token_linear(w1, b1, x, form), form)

        if not training:
            return {form: (lambda f=form: pair(f)) for form in names}
        grad = torch.randn(x.shape, generator=g).to(dtype)
        for t in operands:
            t.requires_grad_()

        def step(form: str) -> torch.Tensor:  # the output and the five gradients, flat
            out = pair(form)
            grads = torch.autograd.grad(out, operands, grad)
            return torch.cat([t.detach().flatten() for t in (out, *grads)])

        return {form: (lambda f=form: step(f)) for form in names}

    mode = "training" if training else "inference"
    case = f"{str(dtype).removeprefix('torch.')}, {mode}, S={k}, D_S={m}, C={n}"
    reduced = dtype in _REDUCED
    return pieces.decide(
        PIECE, case, names, probe,
        rule=lambda kind: rule(kind, dtype, training),
        tolerance=2e-2 if reduced else 1e-5,
    )  # fmt: skip


def token_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, form: str | None = None
) -> torch.Tensor:
    """``weight @ x[i] + bias[:, None]`` for every i: weight (M, K), bias (M,), x (B, K, N) -> (B, M, N).

    ``form``: one of `FORMS` or `LAYOUTS` (None: `AFTER` where `split_bias` says, else
    `INSIDE`). The `ONE_LINEAR` and `LAYOUTS` results are transposed views of contiguous
    (B, N, M) tensors.
    """
    if form is None:
        form = AFTER if split_bias(weight, x) else INSIDE
    if form == LAYOUTS and layouts.usable(x, weight):
        b, k, n = x.shape
        dtype = _product_dtype(weight, x)
        # (B·N, K) column-major = (K, B·N) row-major: one pass that casts and transposes
        rows_of_x = layouts.contiguous_as(x.transpose(0, 1), dtype)
        out = layouts.linear(rows_of_x.view(k, b * n).t(), weight, bias, dtype)
        return out.view(b, n, -1).mT
    if form == LAYOUTS:
        form = ONE_LINEAR
    if form == ONE_LINEAR:
        return F.linear(x.mT.contiguous(), weight, bias).mT  # (else matmul runs bmm per image)
    w = weight.expand(x.shape[0], -1, -1)  # broadcast over the batch, no copy
    if bias is None:
        return torch.bmm(w, x)
    if form == AFTER:
        return torch.bmm(w, x).add_(bias[:, None])
    return torch.baddbmm(bias[:, None], w, x)
