"""When the CPU fast paths (fused GELU, oneDNN products, cached autocast weights, split token
bias, chunked channel MLP) step aside for plain ATen ops.

Under ``torch.compile``, ``torch.export`` or ``torch.jit`` tracing the graph must see ordinary
ATen ops (inductor fuses them itself, exported programs must not call our kernels); under a
torch dispatch mode (``FlopCounterMode``, fake tensors, debug modes) the mode must see them too.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode


def traced() -> bool:
    """True while compiling, exporting or tracing."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def aten_only() -> bool:
    """True when every op must be a visible ATen op: traced, or under a dispatch mode."""
    return traced() or is_in_torch_dispatch_mode()
