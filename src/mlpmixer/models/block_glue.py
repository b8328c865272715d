"""The Mixer block's elementwise glue fused into two passes, for bf16 CPU inference.

Between its products a Mixer block in inference runs, per block and on (B, S, C)-sized
activations: the first token product's bias add and GELU (two passes over (B, D_S, C)), the
second token product's bias add, the residual add and the channel LayerNorm (three passes
over (B, S, C)). In bfloat16 on the CPU each pass costs about as much memory traffic as the
next, and together they are ~5% of Mixer-S/16's inference step. The C kernels in
``gelu_kernel.c`` (built and loaded by `gelu`, same cache, same fallback) do them in two:

* ``bias_gelu_``: h = GELU_tanh(h + b[:, None]) in place;
* ``bias_residual_layer_norm``: t = t + b[:, None] + x in place (the new residual stream) and
  LayerNorm(t), with values rounded to bfloat16 where the ATen ops round, so results match.

`applies` says where: inference (grad disabled, eval mode), CPU, bfloat16 products
(autocast to bf16, or bf16 weights), the tanh GELU, the exact `MixerBlock` layers without
hooks, eager (not compile/export/tracing, no dispatch mode, no torch.func wrappers), the
kernel built and neither ``MLPMIXER_FUSED_GELU`` nor ``MLPMIXER_BLOCK_GLUE`` set to ``0``.
Everywhere else the block runs its ATen path.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from . import gelu as _gelu


def enabled() -> bool:
    """False when ``MLPMIXER_BLOCK_GLUE`` is ``0``/``false``/``no``/``off`` (read at each call)."""
    value = os.environ.get("MLPMIXER_BLOCK_GLUE", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def _eager_cpu_tensor(x: torch.Tensor) -> bool:
    return (
        not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not is_in_torch_dispatch_mode()
        and type(x) is torch.Tensor
        and not torch._C._functorch.is_functorch_wrapped_tensor(x)
        and x.device.type == "cpu"
        and x.dtype == torch.bfloat16
        and x.is_contiguous()
        and x.numel() > 0
    )


def _plain(module: nn.Module) -> bool:
    return not module._forward_hooks and not module._forward_pre_hooks


def _plain_layer_norm(norm: nn.Module, dim: int) -> bool:
    return (
        type(norm) is nn.LayerNorm
        and norm.normalized_shape == (dim,)
        and norm.weight is not None
        and norm.bias is not None
    )


def applies(
    x: torch.Tensor, token_norm: nn.Module, token_mixing: nn.Module, channel_norm: nn.Module
) -> bool:
    """Whether the fused glue runs for this block call (see the module docstring)."""
    from .mixer import TokenMixingMlp  # the exact class: gMixer's SwiGLU is not this

    if torch.is_grad_enabled() or token_mixing.training or not enabled():
        return False
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") != torch.bfloat16:
        return False
    norms = (token_norm, channel_norm)
    return (
        type(token_mixing) is TokenMixingMlp
        and all(_plain_layer_norm(n, x.shape[-1]) for n in norms)
        and all(_plain(m) for m in (token_norm, token_mixing, channel_norm))
        and token_mixing.act.approximate == "tanh"
        and _eager_cpu_tensor(x)
        and _gelu.fused_available()
    )


def _rows(t: torch.Tensor) -> tuple[int, int]:
    cols = t.shape[-1]
    return t.numel() // cols, cols


def bias_gelu_(h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """h (B, M, N) bf16 contiguous, bias (M,) bf16: h = GELU_tanh(h + bias[:, None]), in place."""
    bias = bias.contiguous()
    rows, cols = _rows(h)
    _gelu._library().bias_gelu_rows_bf16(
        h.data_ptr(), bias.data_ptr(), h.data_ptr(), rows, cols, bias.numel(),
        torch.get_num_threads(),
    )  # fmt: skip
    return h


def bias_residual_layer_norm(
    t: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, norm: nn.LayerNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """t, x (B, S, C) bf16 contiguous, bias (S,) bf16 -> (t + bias[:, None] + x, norm(that)).

    The sum is written into ``t`` (returned as the first value); the second is a new tensor.
    """
    bias = bias.contiguous()
    gamma = norm.weight.detach().float().contiguous()
    beta = norm.bias.detach().float().contiguous()
    out = torch.empty_like(t)
    rows, cols = _rows(t)
    _gelu._library().bias_residual_layer_norm_bf16(
        t.data_ptr(), bias.data_ptr(), x.data_ptr(), gamma.data_ptr(), beta.data_ptr(),
        out.data_ptr(), rows, cols, bias.numel(), float(norm.eps), torch.get_num_threads(),
    )  # fmt: skip
    return t, out
