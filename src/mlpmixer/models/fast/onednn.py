"""Linear + bias (+ GELU) as one oneDNN primitive, for CPU inference.

``F.linear`` on the CPU broadcasts the bias into the output and then accumulates the product
into it (one more pass over the output), and on AMD CPUs its fp32 products go to MKL, which
does not use AVX-512 there. ``torch.ops.mkldnn._linear_pointwise`` (the op inductor's
freezing pass emits) runs the product in oneDNN with the bias, and optionally the GELU, as
its epilogue. On AMD CPUs this is oneDNN's AVX-512 kernel against MKL's
AVX2 one (measured gains: docs/performance.md); logits within 4e-7 (fp32) of the ATen path.

Only in inference (grad disabled), on CPU, float32/bfloat16, outside compile/tracing, when the
op exists in this torch build; anything else returns None and the caller uses its ATen path;
also under a torch dispatch mode (``FlopCounterMode``, fake tensors), which must see the ATen
ops. Whether the layers use it at all is decided once per dtype and shape class
(`inference_choice`, `training_choice`: a rule on the CPUs it was measured on, a probe
elsewhere, ``MLPMIXER_ONEDNN=0`` read then: `pieces`) — on an AVX2 EPYC it lost 6-9%. The op is private to PyTorch and not every CPU has every
dtype (oneDNN has no bf16 inner product without AVX-512 or AVX2-VNNI-2): bf16 is tried only
where ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` says so, and a call that fails anyway
switches off that op for that dtype only (`failed`), logged once at debug level; the caller
computes the same numbers with ATen.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ...cpu_kind import onednn_fp32_training
from . import pieces
from .aside import aten_only
from .autocast_cache import plain_linear

log = logging.getLogger(__name__)

_ALGORITHM = {"tanh": "tanh", "none": "none"}  # GELU approximate -> oneDNN's gelu algorithm
# (op, dtype) pairs whose oneDNN call failed in this process: "linear" (inference, with or
# without the GELU post-op: "linear+gelu") or "training"; the rest of oneDNN stays on
failed: set[tuple[str, torch.dtype]] = set()


SWITCH = "MLPMIXER_ONEDNN"


def enabled() -> bool:
    """False when ``MLPMIXER_ONEDNN`` is ``0``/``false``/``no``/``off`` (read by the decisions,
    not per call: `pieces.reset` after changing it in a running process)."""
    return not pieces.switched_off(SWITCH)


def available() -> bool:
    """Whether this torch build has oneDNN and its fused linear op."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@functools.cache
def supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN's inner product runs in ``dtype`` on this CPU (as oneDNN itself reports,
    so ``ONEDNN_MAX_CPU_ISA`` is honoured): fp32 wherever oneDNN is; bf16 only with bf16
    instructions or AVX-512 (``_is_mkldnn_bf16_supported``); nothing else."""
    if not available():
        return False
    if dtype == torch.float32:
        return True
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def pointwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, attr: str, algorithm: str
) -> torch.Tensor:
    """oneDNN's ``x @ weightᵀ + bias`` with the post-op ``attr`` ("none" or "gelu"): the one
    place that calls the private op (x 2-D)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], algorithm)


def works(op: str, dtype: torch.dtype) -> bool:
    """Whether oneDNN's ``op`` may run in ``dtype``: supported, and not failed before."""
    return supports(dtype) and (op, dtype) not in failed


def record_failure(op: str, dtype: torch.dtype, err: BaseException) -> None:
    """Switch off ``op`` in ``dtype`` for this process (only that pair), logged once (debug)."""
    if (op, dtype) not in failed:
        failed.add((op, dtype))
        log.debug("oneDNN %s in %s failed, using ATen for it from now on: %s", op, dtype, err)


def _eager_cpu(x: torch.Tensor) -> bool:
    """Eager CPU execution (see `aside.aten_only`) where this torch has the op."""
    return not aten_only() and x.device.type == "cpu" and available()


def _usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        not torch.is_grad_enabled()
        and weight.dtype in (torch.float32, torch.bfloat16)
        and _eager_cpu(x)
    )


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: str | None = None
) -> torch.Tensor | None:
    """``x @ weightᵀ + bias`` (then GELU with ``approximate=gelu``) for x (..., K), or None.

    ``x`` is cast to the weight's dtype (CPU autocast hands fp32 or bf16 activations; the
    weights are the cached autocast copies). Returns None where this path does not apply.
    """
    if not _usable(x, weight) or (gelu is not None and gelu not in _ALGORITHM):
        return None
    if bias is not None and bias.dtype != weight.dtype:
        return None
    op = "linear" if gelu is None else "linear+gelu"
    if not works(op, weight.dtype):
        return None
    rows = x.reshape(-1, x.shape[-1]).to(weight.dtype)
    attr, algorithm = ("gelu", _ALGORITHM[gelu]) if gelu is not None else ("none", "")
    try:
        out = pointwise(rows, weight, bias, attr, algorithm)
    except (RuntimeError, NotImplementedError) as err:
        record_failure(op, weight.dtype, err)
        return None
    return out.view(*x.shape[:-1], weight.shape[0])


def run_mlp(
    x: torch.Tensor,
    params: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None],
    gelu: str,
    epilogue: bool,
) -> torch.Tensor:
    """fc2(GELU(fc1(x))) for x (rows, dim) in the weights' dtype, no checks: for a layer that
    resolved this path for its case (`inference_choice`). Raises what oneDNN raises."""
    from .gelu import gelu_

    w1, b1, w2, b2 = params
    if epilogue:
        h = pointwise(x, w1, b1, "gelu", _ALGORITHM[gelu])
    else:
        h = gelu_(pointwise(x, w1, b1, "none", ""), gelu)
    return pointwise(h, w2, b2, "none", "")


# --- the decisions: which of these paths a channel MLP uses, per dtype and shape class ------

INFERENCE = "oneDNN products (inference)"
TRAINING = "oneDNN products (fp32 training)"
EPILOGUE, SEPARATE, ATEN = "oneDNN, GELU epilogue", "oneDNN, fused GELU between", "ATen"


def _operands(rows: int, dims: tuple[int, ...], dtype: torch.dtype) -> list[torch.Tensor]:
    """x (rows, dims[0]) and for each step (k -> n) a weight (n, k) and a bias (n,)."""
    g = torch.Generator().manual_seed(0)
    out = [torch.randn(rows, dims[0], generator=g)]
    for k, n in itertools.pairwise(dims):
        out += [torch.randn(n, k, generator=g) / math.sqrt(k), torch.randn(n, generator=g)]
    return [t.to(dtype) for t in out]


def _unavailable(dtype: torch.dtype) -> Callable[[], str | None]:
    def why() -> str | None:
        if not available():
            return "this torch has no oneDNN linear"
        if not supports(dtype):
            return f"oneDNN has no {str(dtype).removeprefix('torch.')} inner product on this CPU"
        if (("linear", dtype) in failed) or (("linear+gelu", dtype) in failed):
            return "a oneDNN call failed in this process"
        return None

    return why


def inference_choice(dtype: torch.dtype, dim: int, hidden: int, gelu: str, rows: int) -> str:
    """`EPILOGUE`, `SEPARATE` or `ATEN`: how a channel MLP dim -> hidden -> dim computes in
    inference in ``dtype`` (the compute dtype: autocast's or the weights') with ``rows`` rows."""
    from .gelu import gelu_

    rows_class = pieces.rows_class(rows)
    case = f"{str(dtype).removeprefix('torch.')}, {dim}x{hidden}, {rows_class} rows, {gelu} GELU"

    def probe() -> dict[str, Callable[[], torch.Tensor]]:
        x, w1, b1, w2, b2 = _operands(pieces.PROBE_ROWS[rows_class], (dim, hidden, dim), dtype)
        params = (w1, b1, w2, b2)
        return {
            EPILOGUE: lambda: run_mlp(x, params, gelu, epilogue=True),
            SEPARATE: lambda: run_mlp(x, params, gelu, epilogue=False),
            ATEN: lambda: F.linear(gelu_(F.linear(x, w1, b1), gelu), w2, b2),
        }

    choice = pieces.decide(
        INFERENCE, case, (EPILOGUE, SEPARATE, ATEN), probe, rule=lambda kind: EPILOGUE,
        unavailable=_unavailable(dtype), switch=SWITCH,
        tolerance=1e-5 if dtype == torch.float32 else 2e-2,
    )  # fmt: skip
    return choice if works("linear", dtype) and works("linear+gelu", dtype) else ATEN


def training_choice(dim: int, hidden: int, rows: int) -> str:
    """``"oneDNN"`` or `ATEN`: where a channel MLP's fp32 training products run."""
    rows_class = pieces.rows_class(rows)
    case = f"float32, {dim}x{hidden}, {rows_class} rows"

    def probe() -> dict[str, Callable[[], torch.Tensor]]:
        rows = pieces.TRAINING_PROBE_ROWS[rows_class]
        x, w1, b1 = _operands(rows, (dim, hidden), torch.float32)  # fc1 (fc2: its transpose)
        w1.requires_grad_(True)

        def step(product: Callable[..., torch.Tensor]) -> torch.Tensor:
            x.grad = w1.grad = None
            x.requires_grad_(True)
            out = product(x, w1, b1)
            out.backward(torch.ones_like(out))
            return torch.cat([out.detach().flatten(), x.grad.flatten(), w1.grad.flatten()])

        return {
            "oneDNN": lambda: step(_TrainingLinear.apply),
            ATEN: lambda: step(F.linear),
        }

    if not works("training", torch.float32):
        return ATEN
    return pieces.decide(
        TRAINING, case, ("oneDNN", ATEN), probe,
        rule=lambda kind: "oneDNN" if onednn_fp32_training(pieces.effective_cpu()) else ATEN,
        unavailable=_unavailable(torch.float32), switch=SWITCH,
    )  # fmt: skip


# --- fp32 training: the forward and input-gradient products in oneDNN -----------------------
#
# In fp32 the channel MLP's products go to MKL through ATen; on AMD CPUs MKL does not use
# AVX-512 and oneDNN does. In training the forward product and the
# input-gradient product dX = dY·W have the same form as a linear, so they run through the same
# oneDNN op (W transposed once per step: a weight-sized copy). The weight gradient dYᵀ·X needs
# both big operands transposed into contiguous copies first, and still wins on the EPYC
# (docs/performance.md).
# `_WEIGHT_GRAD_IN_ONEDNN = False` keeps dW in `torch.mm`. The bias gradient is a sum.
# On Intel CPUs MKL has AVX-512 kernels and the transposes only cost, so the layers use this
# path only where `training_choice` says it wins (the rule `cpu_kind.onednn_fp32_training`
# on the CPUs it was measured on, a probe elsewhere).


def _training_usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and type(x) in (torch.Tensor, torch.nn.Parameter)  # not subclasses or torch.func wrappers
        and not torch._C._functorch.is_functorch_wrapped_tensor(x)
        and not torch._C._functorch.is_functorch_wrapped_tensor(weight)
        and x.dtype == weight.dtype == torch.float32
        and _eager_cpu(x)
    )


def _product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return pointwise(x, weight, bias, "none", "")


_WEIGHT_GRAD_IN_ONEDNN = True


def _weight_grad(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dW = gradᵀ·x (N, K), for grad (M, N), x (M, K)."""
    if not _WEIGHT_GRAD_IN_ONEDNN:
        return grad.t().mm(x)
    return _product(grad.t().contiguous(), x.t().contiguous(), None)


class _TrainingLinear(torch.autograd.Function):
    """x (M, K) @ weightᵀ + bias with the forward and dX products in oneDNN (fp32, CPU)."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _product(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        dx = _product(grad, weight.t().contiguous(), None) if needs_x else None
        dw = _weight_grad(grad, x) if needs_w else None
        db = grad.sum(0) if ctx.has_bias and needs_b else None
        return dx, dw, db


def training_linear(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``module(x)`` for a plain fp32 ``nn.Linear`` in CPU training through oneDNN, or None.

    None where it does not apply (inference, autocast, other dtypes or devices, compile,
    dispatch modes, wrapped modules, a failed call): the caller runs the module.
    Not twice differentiable (``create_graph=True`` raises); double backward is float64
    territory here, which never takes this path.
    """
    if not plain_linear(module) or not _training_usable(x, module.weight):
        return None
    if module.bias is not None and module.bias.dtype != torch.float32:
        return None
    if not works("training", torch.float32):
        return None
    rows = x.reshape(-1, x.shape[-1])
    try:
        out = _TrainingLinear.apply(rows, module.weight, module.bias)
    except (RuntimeError, NotImplementedError) as err:  # (the forward product: nothing half-done)
        record_failure("training", torch.float32, err)
        return None
    return out.view(*x.shape[:-1], module.weight.shape[0])
