"""Which int8 method runs faster than fp32 here (``mlpmixer quantize --method auto``), and the
refusal of one that would run slower.

Every method has a `Rule` in `RULES` (adding a method is one entry there). A rule either
measures the method on the model itself or decides it from the hardware:

* weight-only and dynamic run as they are saved (eager torchao kernels): they are timed on the
  model against the fp32 model at each batch size the user will run (default 1 and 32:
  latency and throughput), interleaved, one thread, process CPU time (`speed`). Slower than
  fp32 at *any* of those batch sizes is slower: the verdict is the worst ratio.
* static runs oneDNN's int8 kernels only once compiled (``torch.compile`` with Inductor's
  freezing: minutes for a small model on a busy 2-core machine), too slow to measure in the
  command; it is decided from the CPU's features instead: oneDNN's int8 products need VNNI
  (AVX-512 VNNI, AVX-VNNI) or AMX to beat fp32 (benchmarks/int8.py measures both sides of
  that rule at batch 1 and 32: docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch

from ..cpu_kind import INT8_UNIT_FLAGS, CpuKind, effective_cpu, int8_units
from ..models.base import MlpFamilyModel
from .plain import has_free_linears
from .quantize import quantize
from .speed import best_times, speedups

BATCH_SIZES = (1, 32)  # latency and throughput: what auto judges by default


@dataclass(frozen=True)
class Verdict:
    """How ``method`` does against fp32 here: ``fast`` (no slower at any batch size judged),
    ``ratios`` (measured speed-up over fp32 by batch size; empty when decided from the
    hardware) and ``reason``, a sentence the command prints."""

    method: str
    fast: bool
    reason: str
    ratios: Mapping[int, float] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """The worst measured ratio (None when decided from the hardware)."""
        return min(self.ratios.values()) if self.ratios else None


@dataclass(frozen=True)
class Rule:
    """How a method is judged. ``decide``: a verdict from the hardware alone (None: the method
    is timed on the model); ``needs_calibration``: auto may take it only with calibration
    images; ``preferred``: auto takes it before the timed methods wherever it is fast (static:
    the only method whose products are int8 end to end)."""

    decide: Callable[[], Verdict] | None = None
    needs_calibration: bool = False
    preferred: bool = False


def static_verdict(kind: CpuKind | None = None) -> Verdict:
    """Static int8, decided from the CPU's features (see the module's docstring)."""
    kind = kind or effective_cpu()
    if int8_units(kind):
        units = ", ".join(sorted(kind.flags & INT8_UNIT_FLAGS))
        return Verdict("static", True, f"this CPU has int8 dot-product units ({units})")
    return Verdict(
        "static",
        False,
        "this CPU (as oneDNN may use it) has no VNNI or AMX int8 units, where static int8 "
        "does not beat fp32",
    )


RULES: dict[str, Rule] = {
    "weight-only": Rule(),
    "dynamic": Rule(),
    "static": Rule(decide=lambda: static_verdict(), needs_calibration=True, preferred=True),
}


def describe_ratios(ratios: Mapping[int, float]) -> str:
    """``"0.80x fp32 at batch 1, 1.30x at batch 32"``."""
    parts = [f"{r:.2f}x" + " fp32" * (i == 0) + f" at batch {b}"
             for i, (b, r) in enumerate(sorted(ratios.items()))]  # fmt: skip
    return ", ".join(parts)


def measured(method: str, ratios: Mapping[int, float]) -> Verdict:
    """The verdict of ``method`` timed at ``ratios``' batch sizes: slower at any is slower."""
    slow = [b for b, r in sorted(ratios.items()) if r < 1.0]
    reason = "measured " + describe_ratios(ratios)
    if slow:
        reason += f" (slower than fp32 at batch {', '.join(map(str, slow))})"
    return Verdict(method, not slow, reason, dict(ratios))


def _calls(batch: int) -> int:
    return max(3, 32 // batch)  # ~32 images a round: batch 1's per-call overhead is averaged


def measured_verdicts(
    model: MlpFamilyModel, methods: Iterable[str], batch_sizes: Iterable[int] = BATCH_SIZES
) -> dict[str, Verdict]:
    """``methods`` timed against ``model`` in fp32 on random images, at each batch size (one
    interleaved run per batch size, so fp32 is timed once for all of them)."""
    methods = tuple(methods)
    cfg = model.config
    models = {"fp32": model.eval(), **{m: quantize(model, m) for m in methods}}
    ratios: dict[str, dict[int, float]] = {m: {} for m in methods}
    for batch in sorted(set(batch_sizes)):
        images = torch.randn(batch, cfg.in_chans, *cfg.img_size)
        times = best_times(models, images, rounds=3, calls=_calls(batch))
        for method, ratio in speedups(times, "fp32").items():
            if method != "fp32":
                ratios[method][batch] = ratio
    return {m: measured(m, ratios[m]) for m in methods}


def verdicts(
    model: MlpFamilyModel, methods: Iterable[str], batch_sizes: Iterable[int] = BATCH_SIZES
) -> dict[str, Verdict]:
    """The verdict of each of ``methods`` (keys of `RULES`), in that order. A timed method the
    model cannot take raises `quantize`'s `ConfigError` (e.g. dynamic for AS-MLP)."""
    methods = tuple(methods)
    timed = [m for m in methods if RULES[m].decide is None]
    out = measured_verdicts(model, timed, batch_sizes) if timed else {}
    for m in methods:
        decide = RULES[m].decide
        if decide is not None:
            out[m] = decide()
    return {m: out[m] for m in methods}


def verdict(
    model: MlpFamilyModel, method: str, batch_sizes: Iterable[int] = BATCH_SIZES
) -> Verdict:
    """How ``method`` would do against fp32 on this machine."""
    return verdicts(model, (method,), batch_sizes)[method]


def auto_method(
    model: MlpFamilyModel, calibration: bool, batch_sizes: Iterable[int] = BATCH_SIZES
) -> tuple[Verdict | None, list[Verdict]]:
    """The method ``--method auto`` takes (None: none beats fp32 here) and every verdict.

    A preferred method (static) where it is fast and can run (calibration images given), else
    the timed method whose worst ratio over ``batch_sizes`` is the largest, if it is >= 1.
    """
    judged: dict[str, Verdict] = {}
    if not has_free_linears(model):  # AS-MLP, Wave-MLP, Hire-MLP: convolutions, not timed
        reason = "no nn.Linear to quantize outside the stem and head (convolutions only)"
        judged = {m: Verdict(m, False, reason) for m, rule in RULES.items() if rule.decide is None}
    judged |= verdicts(model, [m for m in RULES if m not in judged], batch_sizes)
    judged = {m: judged[m] for m in RULES}
    usable = [v for m, v in judged.items() if v.fast and (calibration or not RULES[m].needs_calibration)]  # fmt: skip
    preferred = [v for v in usable if RULES[v.method].preferred]
    if preferred:
        return preferred[0], list(judged.values())
    timed = [v for v in usable if v.speedup is not None]
    chosen = max(timed, key=lambda v: v.speedup or 0.0) if timed else None
    return chosen, list(judged.values())
