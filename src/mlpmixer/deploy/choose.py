"""Which int8 method runs faster than fp32 here (``mlpmixer quantize --method auto``), and the
refusal of one that would run slower.

weight-only and dynamic run as they are saved (eager torchao kernels): they are measured on
the model itself, at batch 32, against the fp32 model (`speed`). Static int8 runs oneDNN's
int8 kernels only once compiled (``torch.compile`` with Inductor's freezing: minutes for a
small model on a busy 2-core machine), too slow to measure in the command; it is decided from
the CPU's features instead: oneDNN's int8 products need VNNI (AVX-512 VNNI, AVX-VNNI) or AMX
to beat fp32 (benchmarks/int8.py measures both sides of that rule: docs/deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cpu_kind import CpuKind, effective_cpu
from ..models.base import MlpFamilyModel
from .plain import has_free_linears
from .quantize import quantize
from .speed import best_times, speedups

MEASURED = ("weight-only", "dynamic")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@dataclass(frozen=True)
class Verdict:
    """``method``'s expected speed-up over fp32 (``speedup``: measured, or None when decided
    from the CPU) and ``reason``, a sentence the command prints."""

    method: str
    fast: bool
    speedup: float | None
    reason: str


def int8_units(kind: CpuKind) -> bool:
    """Whether the CPU (as the libraries may use it) has int8 dot-product units."""
    return bool(kind.flags & VNNI_FLAGS)


def static_verdict(kind: CpuKind | None = None) -> Verdict:
    """Static int8, decided from the CPU's features (see the module's docstring)."""
    kind = kind or effective_cpu()
    if int8_units(kind):
        units = ", ".join(sorted(kind.flags & VNNI_FLAGS))
        return Verdict("static", True, None, f"this CPU has int8 dot-product units ({units})")
    return Verdict(
        "static",
        False,
        None,
        "this CPU (as oneDNN may use it) has no VNNI or AMX int8 units, where static int8 "
        "does not beat fp32",
    )


def measured_verdicts(
    model: MlpFamilyModel, methods: tuple[str, ...] = MEASURED, batch: int = 32
) -> dict[str, Verdict]:
    """weight-only and dynamic timed against ``model`` in fp32 on random images."""
    cfg = model.config
    images = torch.randn(batch, cfg.in_chans, *cfg.img_size)
    models = {"fp32": model.eval(), **{m: quantize(model, m) for m in methods}}
    ratios = speedups(best_times(models, images, rounds=3, calls=3), "fp32")
    return {
        m: Verdict(
            m, ratios[m] >= 1.0, ratios[m], f"measured {ratios[m]:.2f}x fp32 at batch {batch}"
        )
        for m in methods
    }


def verdict(model: MlpFamilyModel, method: str) -> Verdict:
    """How ``method`` would do against fp32 on this machine."""
    if method == "static":
        return static_verdict()
    return measured_verdicts(model, (method,))[method]


def auto_method(model: MlpFamilyModel, calibration: bool) -> tuple[Verdict | None, list[Verdict]]:
    """The method ``--method auto`` takes (None: none beats fp32 here) and every verdict.

    Static first where the CPU has int8 units and calibration images are given (it is the
    only method whose products are int8 end to end), else the measured method with the
    largest speed-up >= 1.
    """
    if has_free_linears(model):
        verdicts = list(measured_verdicts(model).values())
    else:  # AS-MLP, Wave-MLP, Hire-MLP: their mixing layers are convolutions
        reason = "no nn.Linear to quantize outside the stem and head (convolutions only)"
        verdicts = [Verdict(m, False, None, reason) for m in MEASURED]
    static = static_verdict()
    verdicts.append(static)
    if static.fast and calibration:
        return static, verdicts
    fast = [v for v in verdicts if v.fast and v.speedup is not None]
    return (max(fast, key=lambda v: v.speedup or 0.0) if fast else None), verdicts
