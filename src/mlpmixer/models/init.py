"""Weight initialisation as in the official JAX code (google-research/vision_transformer).

Dense and stem kernels: flax's default ``lecun_normal`` — a normal with variance 1/fan_in,
truncated at two standard deviations (and widened so the truncated variance is still
1/fan_in). Biases zero, LayerNorm scale one and bias zero, and the classifier head all zeros
(set by the model itself). big_vision's Mixer uses xavier-uniform kernels instead; both give
the same results at the paper's scale, and this one matches the released checkpoints' code.

A model is built inside `deferred_init()`: its Linear and Conv2d layers (made with `linear` /
`conv`) then skip torch's default init, which `init_weights` would overwrite at once (30% of a
fresh B/16's build time), and `init_weights` fills every one of them exactly once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

# Standard deviation of a unit normal truncated to [-2, 2]; flax divides by it.
_TRUNCATED_STD = 0.87962566103423978
# P(-2 < X < 2) for a unit normal X: erf(√2) = 2Φ(2) - 1
_INSIDE = math.erf(math.sqrt(2.0))
_DEFERRED: ContextVar[bool] = ContextVar("mlpmixer_deferred_init", default=False)


@contextmanager
def deferred_init() -> Iterator[None]:
    """Inside, `linear` and `conv` give layers with uninitialised weights and biases.

    Only for code that initialises every such layer itself before anyone reads it (the model
    constructor: `init_weights`). A context variable, so other threads (and a layer built
    outside a model) keep torch's default init.
    """
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


@functools.cache
def _without_reset(module_cls: type[nn.Module]) -> type[nn.Module]:
    """``module_cls`` whose ``reset_parameters`` (the default init its ``__init__`` ends with)
    does nothing."""
    return type(f"_Uninitialised{module_cls.__name__}", (module_cls,), {
        "reset_parameters": lambda self: None, "__module__": __name__,
    })  # fmt: skip


def _built(module_cls: type[nn.Module], *args: object, **kwargs: object) -> nn.Module:
    if not _DEFERRED.get():
        return module_cls(*args, **kwargs)
    # torch's own __init__ (every attribute as torch sets it, storage from torch.empty on the
    # default or `torch.device` context's device), minus the init; then the exact class again
    # (code checks `type(m) is nn.Linear`). Building on the meta device instead costs 10x
    # more: the meta default init still runs, through Python decompositions.
    module = _without_reset(module_cls)(*args, **kwargs)
    module.__class__ = module_cls
    return module


def linear(in_features: int, out_features: int) -> nn.Linear:
    """``nn.Linear(in_features, out_features)``; uninitialised inside `deferred_init()`."""
    return _built(nn.Linear, in_features, out_features)


def conv(
    in_chans: int, out_chans: int, kernel: tuple[int, int], stride: tuple[int, int]
) -> nn.Conv2d:
    """``nn.Conv2d(in_chans, out_chans, kernel, stride)``, uninitialised in `deferred_init()`."""
    return _built(nn.Conv2d, in_chans, out_chans, kernel_size=kernel, stride=stride)


@torch.no_grad()
def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Fill ``weight`` (out, in, ...) with flax's lecun_normal: trunc-normal, var = 1/fan_in."""
    fan_in = weight[0].numel()
    return truncated_normal_(weight, math.sqrt(1.0 / fan_in) / _TRUNCATED_STD)


@torch.no_grad()
def truncated_normal_(weight: torch.Tensor, std: float) -> torch.Tensor:
    """Fill ``weight`` with normal(0, std) draws truncated to [-2 std, 2 std], exactly.

    Inverse transform sampling: u ~ U(-erf(√2), erf(√2)), the image of [-2, 2] under
    erf(x/√2) = 2Φ(x) - 1, then x = √2 · erfinv(u) is a unit normal conditioned on [-2, 2].
    One uniform draw per value and in-place passes, no rejection loop: torch's
    ``trunc_normal_`` redraws the whole tensor until no value is outside (5-6 full normal
    draws), and a redraw of only the values outside still costs an index pass and its
    allocations; this costs one uniform draw plus an erfinv (measured: 12 ms for a 3072 x 768
    weight against 14 ms for timm's two uniform inits, 16 ms redrawing, 80 ms for torch's).
    """
    if weight.is_meta:  # no storage (models built for their shapes): nothing to draw
        return weight
    if weight.dtype not in (torch.float32, torch.float64):  # half types: draw in float32
        return weight.copy_(truncated_normal_(weight.float(), std))
    weight.uniform_(-_INSIDE, _INSIDE).erfinv_().mul_(math.sqrt(2.0) * std)
    return weight.clamp_(-2.0 * std, 2.0 * std)  # float rounding at the ends, nothing more


@torch.no_grad()
def open_gate_(linear: nn.Linear, rows: slice) -> None:
    """Make ``rows`` of a gating Linear output ~1 whatever its input: weights ~0, bias 1.

    Gated blocks (gMLP's spatial gate, SwiGLU) then start as the plain MLP they gate.
    """
    nn.init.normal_(linear.weight[rows], std=1e-6)
    nn.init.ones_(linear.bias[rows])


@torch.no_grad()
def init_weights(model: nn.Module, gates: Mapping[nn.Module, int] | None = None) -> None:
    """Initialise every Linear and Conv2d of ``model`` except its ``head`` (zeros by design).

    ``gates`` maps a gating Linear to its first gate row: the rows before get lecun_normal
    (the values), the rows from there on `open_gate_` (each row is drawn once, never twice).
    """
    gates = gates or {}
    with _one_thread():
        _init_modules(model, gates)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the init's elementwise passes on this thread alone (torch's thread count is per
    thread under OpenMP). Split across threads they save little wall time (the uniform draw is
    serial anyway) and cost CPU time: on a busy machine a parallel region spins until its
    sibling thread is scheduled (measured: 2 threads, B/16's init 2-3x the CPU of 1 thread)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _init_modules(model: nn.Module, gates: Mapping[nn.Module, int]) -> None:
    for name, module in model.named_modules():
        if name == "head":
            continue
        if isinstance(module, nn.Linear | nn.Conv2d):
            first_gate = gates.get(module, module.weight.shape[0])
            if first_gate:
                lecun_normal_(module.weight[:first_gate])
            nn.init.zeros_(module.bias[:first_gate])
            if first_gate < module.weight.shape[0]:
                open_gate_(module, slice(first_gate, None))
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
