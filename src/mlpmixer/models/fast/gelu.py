"""GELU for every model in the package, with a fused CPU kernel for the tanh form.

``gelu(x, approximate)`` and ``gelu_(x, approximate)`` (in place) compute exactly what
``torch.nn.functional.gelu`` computes. For the tanh form (the official Mixer's function) on
contiguous CPU tensors in float32, bfloat16 or float64, they run a small C kernel
(``gelu_kernel.c``) that evaluates the identity

    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·σ(1.5958·(x + 0.044715·x³))

in one vectorised pass, forward and backward (ATen's tanh GELU spends most of its time in the
tanh; the fused pass is several times cheaper: docs/performance.md). The kernel sits behind
registered ops (``torch.ops.mlpmixer.gelu_tanh``, its backward and its in-place form, with fake
implementations and autograd), so fake tensors, dispatch modes (``FlopCounterMode``) and
autograd see one op. The op's CPU implementation runs the kernel on contiguous float32,
bfloat16 and float64 tensors and ``F.gelu`` on anything else (other devices and dtypes,
strided tensors), and whenever the kernel cannot be built (no C compiler). `gelu` itself
calls ``F.gelu`` for the erf form, where the kernel does not earn its place for the dtype
(`use_fused`: decided once per dtype by `pieces` — a rule on the CPUs it was measured on, a
probe elsewhere — or ``MLPMIXER_FUSED_GELU=0``, read then), and under compile, export, jit
tracing or scripting and FX tracing (`aside.traced`): those graphs keep the standard op,
which inductor fuses itself and which runs without this package.

The kernel is compiled on first use with the system C compiler (``$CC`` or cc/gcc/clang,
OpenMP, ``-O3 -march=native``, killed after ``MLPMIXER_CC_TIMEOUT`` seconds) into
``$MLPMIXER_CACHE/ops`` (default ``~/.cache/mlpmixer/ops``), keyed by a hash of the source,
flags, compiler and CPU, and loaded with ctypes only after `fast.kernel_cache` has verified it
(a private directory, the SHA-256 written by the build, the expected symbols, a self-test
against ``F.gelu``); the OpenMP runtime is the one torch already loaded, so the kernel uses
torch's threads (``torch.get_num_threads()``). Anything that fails is logged once (a warning)
and the fallback used.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import kernel_cache, pieces
from .aside import traced

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("gelu_kernel.c")
# Compile flags (linking is a separate step without them: see fast/kernel_cache.py).
_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-funsafe-math-optimizations"]
_FLAGS += ["-fPIC", "-std=c11"]
_SUFFIX = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float64: "f64"}
_SQRT_2_OVER_PI = 0.7978845608028654


PIECE = "fused GELU"
SWITCH = "MLPMIXER_FUSED_GELU"


def fused_enabled() -> bool:
    """False when ``MLPMIXER_FUSED_GELU`` is ``0``/``false``/``no``/``off``."""
    return not pieces.switched_off(SWITCH)


_SYMBOLS = [f"gelu_{way}_{suffix}" for suffix in _SUFFIX.values() for way in ("fwd", "bwd")]


def _declare(lib: ctypes.CDLL) -> None:
    i64, c_int, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for suffix in _SUFFIX.values():
        getattr(lib, f"gelu_fwd_{suffix}").argtypes = [ptr, ptr, i64, c_int]
        getattr(lib, f"gelu_bwd_{suffix}").argtypes = [ptr, ptr, ptr, i64, c_int]


def _self_test(lib: ctypes.CDLL) -> str | None:
    """None if the library computes tanh-GELU and its derivative (fp32, fp64); else why not."""
    _declare(lib)
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        x = torch.linspace(-6, 6, 97, dtype=dtype)
        out, grad = torch.empty_like(x), torch.empty_like(x)
        suffix = _SUFFIX[dtype]
        getattr(lib, f"gelu_fwd_{suffix}")(x.data_ptr(), out.data_ptr(), x.numel(), 1)
        ones = torch.ones_like(x)
        getattr(lib, f"gelu_bwd_{suffix}")(
            ones.data_ptr(), x.data_ptr(), grad.data_ptr(), x.numel(), 1
        )
        if not torch.allclose(out, F.gelu(x, approximate="tanh"), atol=tol, rtol=0):
            return f"computes something else than tanh-GELU ({dtype})"
        if not torch.allclose(grad, _tanh_gelu_derivative(x), atol=tol * 10, rtol=0):
            return f"computes something else than tanh-GELU's derivative ({dtype})"
    return None


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The loaded, verified kernel, or None (one warning per process) when it cannot be had."""
    try:
        return kernel_cache.load("gelu_kernel", SOURCE, _FLAGS, _SYMBOLS, _self_test)
    except kernel_cache.KernelUnavailable as err:
        if kernel_cache.compiler() is None:
            log.info("fused GELU: %s; using torch.nn.functional.gelu", err)
        else:
            log.warning("fused GELU unavailable, using torch.nn.functional.gelu: %s", err)
        return None


def fused_available() -> bool:
    """True when the kernel is switched on, built and loaded (builds it on the first call)."""
    return fused_enabled() and _library() is not None


def _kernel_applies(x: torch.Tensor) -> bool:
    """Whether the C kernel handles ``x`` (the op's CPU implementation); else ATen's GELU."""
    return (
        x.device.type == "cpu"
        and x.dtype in _SUFFIX
        and x.is_contiguous()
        and x.numel() > 0
        and _library() is not None
    )


_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float64: 1e-10}
_resolved: dict[torch.dtype, bool] = {}
_resolved_generation = -1


def use_fused(dtype: torch.dtype) -> bool:
    """Whether tanh-GELU in ``dtype`` runs the fused kernel here (decided once per dtype)."""
    global _resolved_generation
    if _resolved_generation != pieces.generation:
        _resolved.clear()
        _resolved_generation = pieces.generation
    on = _resolved.get(dtype)
    if on is None:
        on = _resolved[dtype] = dtype in _SUFFIX and _decide(dtype) == "fused"
    return on


def _unavailable() -> str | None:
    if _library() is None:
        return "the kernel is not built (no C compiler, or the build failed: see the log)"
    return None


def _decide(dtype: torch.dtype) -> str:
    def probe() -> dict[str, Callable[[], torch.Tensor]]:
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(1 << 17, generator=g) * 3).to(dtype)
        return {"fused": lambda: gelu_tanh(x), "ATen": lambda: F.gelu(x, approximate="tanh")}

    return pieces.decide(
        PIECE, str(dtype).removeprefix("torch."), ("fused", "ATen"), probe,
        rule=lambda kind: "fused", unavailable=_unavailable, switch=SWITCH,
        tolerance=_TOLERANCE[dtype],
    )  # fmt: skip


def _forward(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    fn = getattr(_library(), f"gelu_fwd_{_SUFFIX[x.dtype]}")
    fn(x.data_ptr(), out.data_ptr(), x.numel(), torch.get_num_threads())
    return out


def _tanh_gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    """d gelu_tanh / dx as differentiable torch ops (double backward, self-test)."""
    s = torch.sigmoid(2 * _SQRT_2_OVER_PI * (x + 0.044715 * x**3))
    return s + 2 * x * s * (1 - s) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x**2)


# ---- the registered ops: one op each in eager, compiled, fake-tensor and dispatch-mode code ----


@torch.library.custom_op("mlpmixer::gelu_tanh", mutates_args=())
def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """``F.gelu(x, approximate="tanh")``, by the C kernel where it applies."""
    if not _kernel_applies(x):
        return F.gelu(x, approximate="tanh")
    return _forward(x, torch.empty_like(x))


@gelu_tanh.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("mlpmixer::gelu_tanh_backward", mutates_args=())
def gelu_tanh_backward(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad · gelu_tanh'(x), by the C kernel where it applies."""
    if not _kernel_applies(x):
        return torch.ops.aten.gelu_backward(grad, x, approximate="tanh")
    grad = grad.to(x.dtype).contiguous()
    out = torch.empty_like(x)
    fn = getattr(_library(), f"gelu_bwd_{_SUFFIX[x.dtype]}")
    fn(grad.data_ptr(), x.data_ptr(), out.data_ptr(), x.numel(), torch.get_num_threads())
    return out


@gelu_tanh_backward.register_fake
def _(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    (x,) = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: a differentiable formula
        return grad * _tanh_gelu_derivative(x)
    return gelu_tanh_backward(grad, x)


gelu_tanh.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("mlpmixer::gelu_tanh_", mutates_args=("x",))
def gelu_tanh_(x: torch.Tensor) -> None:
    """x = gelu_tanh(x) in place (inference: no autograd)."""
    if _kernel_applies(x):
        _forward(x, x)
    else:
        torch.ops.aten.gelu_(x, approximate="tanh")


@gelu_tanh_.register_fake
def _(x: torch.Tensor) -> None:
    return None


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``F.gelu(x, approximate=approximate)``; the tanh form as the registered op where the
    kernel earns its place for ``x``'s dtype (`use_fused`)."""
    if approximate != "tanh" or traced() or not use_fused(x.dtype):
        return F.gelu(x, approximate=approximate)
    return gelu_tanh(x)


def gelu_(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU in place (no autograd: for inference on a tensor nothing else reads)."""
    if (
        approximate != "tanh"
        or traced()
        or (torch.is_grad_enabled() and x.requires_grad)
        or not use_fused(x.dtype)
    ):
        return torch.ops.aten.gelu_(x, approximate=approximate)
    gelu_tanh_(x)
    return x


class GELU(nn.GELU):
    """``nn.GELU`` (same ``approximate`` attribute and state) running `gelu`: a drop-in layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu(x, self.approximate)

    def __prepare_scriptable__(self) -> nn.Module:
        """`torch.jit.script` scripts ``nn.GELU`` (scripted programs run without this package)."""
        return nn.GELU(approximate=self.approximate)
