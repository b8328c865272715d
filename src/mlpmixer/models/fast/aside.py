"""When the CPU fast layers step aside for plain ATen ops.

Under ``torch.compile``, ``torch.export``, ``torch.jit`` tracing or scripting, and
``torch.fx`` symbolic tracing, the graph must hold ordinary ops (inductor fuses them itself,
exported and scripted programs must run without this package); under a torch dispatch mode
(``FlopCounterMode``, fake tensors, debug modes) the mode must see the ATen products, which the
oneDNN and cached-weight paths would hide. The fused GELU is a registered op (`fast.gelu`) and
needs only the first rule.
"""

from __future__ import annotations

import torch
from torch.fx._symbolic_trace import is_fx_symbolic_tracing
from torch.utils._python_dispatch import is_in_torch_dispatch_mode


def traced() -> bool:
    """True while compiling, exporting, tracing (jit or FX) or scripting."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or is_fx_symbolic_tracing()
    )


def aten_only() -> bool:
    """True when every op must be a visible ATen op: traced, or under a dispatch mode."""
    return traced() or is_in_torch_dispatch_mode()
