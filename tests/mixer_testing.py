"""Small helpers shared by the model and checkpoint tests."""

from __future__ import annotations

import math

import pytest
import torch

from mlpmixer import MlpMixer
from mlpmixer.models.fast import onednn

needs_onednn = pytest.mark.skipif(
    not onednn.available(), reason="no oneDNN linear in this torch build"
)
# oneDNN's bf16 inner product needs AVX-512 or bf16 instructions (not an AVX2-only CPU, nor
# ONEDNN_MAX_CPU_ISA=AVX2): there the bf16 tests of the oneDNN path itself are skipped, and
# test_onednn.py checks that bf16 takes ATen instead
needs_onednn_bf16 = pytest.mark.skipif(
    not onednn.supports(torch.bfloat16), reason="oneDNN has no bf16 inner product on this CPU"
)


def randomised(model: MlpMixer, seed: int = 0) -> MlpMixer:
    """Random weights everywhere, head and norms included (the defaults are too symmetric)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            scale = 0.5 if p.ndim == 1 else 1 / math.sqrt(p.shape[-1])
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


# /proc/cpuinfo of the two kinds of CPU the fast path was measured on (shortened)
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model name\t: AMD EPYC
flags\t\t: fpu sse avx2 avx512f avx512_bf16
processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: ignored, the first processor is read
"""
XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: INTEL(R) XEON(R) PLATINUM 8581C CPU @ 2.10GHz
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16
"""


def record_results(monkeypatch, module: object, name: str) -> list[bool]:
    """Wrap ``module.name`` so that each call appends whether it returned a result (not None):
    tells which calls a fast path actually served."""
    seen: list[bool] = []
    original = getattr(module, name)

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out is not None)
        return out

    monkeypatch.setattr(module, name, recording)
    return seen
