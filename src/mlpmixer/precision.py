"""The precisions a run or a benchmark names (``fp32``, ``bf16``, ``fp16``) and their autocast.

One place for both the training loop and the benchmarks, so that "bf16" means the same
region of mixed precision in a training step and in its measurement.

A CPU without bf16 (or fp16) instructions still computes in that precision, by conversion
to fp32 inside the library kernels, at a cost: bf16 products ~7x slower than fp32 on an AVX2
EPYC (Zen 1), fp16 ~12x on a Zen 4 without AVX512_FP16. `warn_if_emulated` says so in one
line, with the ratio measured on the spot, once per process and precision.
"""

from __future__ import annotations

import contextlib
import functools
import logging

import torch
import torch.nn.functional as F

from .choices import PRECISIONS
from .cpu_kind import effective_cpu, native_bf16, native_fp16
from .measured_choice import medians, one_thread

log = logging.getLogger(__name__)
DTYPES = dict(zip(PRECISIONS, (torch.float32, torch.bfloat16, torch.float16), strict=True))


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``precision``'s dtype on ``device_type``; nothing for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=DTYPES[precision])


def native_on_cpu(precision: str) -> bool:
    """Whether this CPU (ISA caps applied: `cpu_kind.effective_cpu`) has instructions for
    ``precision``'s products; fp32 always."""
    kind = effective_cpu()
    return {"bf16": native_bf16, "fp16": native_fp16}.get(precision, lambda _: True)(kind)


def product_slowdown(precision: str, rows: int = 256, width: int = 384, rounds: int = 5) -> float:
    """How many times longer a (rows, width) x (width, width) product takes in ``precision``
    than in fp32 on this CPU: median thread time over interleaved rounds (~50 ms in all)."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(rows, width, generator=g), torch.randn(width, width, generator=g)
    operands = {"fp32": (x, w), precision: (x.to(DTYPES[precision]), w.to(DTYPES[precision]))}
    products = {name: functools.partial(F.linear, a, b) for name, (a, b) in operands.items()}
    with one_thread():
        median = medians(products, rounds)
    return median[precision] / max(median["fp32"], 1e-9)


@functools.cache
def warn_if_emulated(device_type: str, precision: str) -> str | None:
    """On a CPU without native ``precision`` products, log (once per process) and return one
    line saying so and what it costs; None where the precision is native (or not on CPU)."""
    if device_type != "cpu" or precision == "fp32" or native_on_cpu(precision):
        return None
    slowdown = product_slowdown(precision)
    line = (
        f"this CPU has no native {precision} instructions: {precision} products are emulated "
        f"and take {slowdown:.1f}x the fp32 time here (measured)"
        + ("; fp32 is faster on this CPU" if slowdown > 1.1 else "")
    )
    log.warning("%s", line)
    return line
