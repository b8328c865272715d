"""The precisions a run or a benchmark names (``fp32``, ``bf16``, ``fp16``) and their autocast.

One place for both the training loop and the benchmarks, so that "bf16" means the same
region of mixed precision in a training step and in its measurement.
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``precision``'s dtype on ``device_type``; nothing for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=DTYPES[precision])
