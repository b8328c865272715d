"""What kind of CPU this is (read once from ``/proc/cpuinfo``), and the rules that depend on it.

The CPU fast path's pieces are not equally good on every CPU. The case that decided this
module: in fp32 training, ATen sends the products to MKL, which uses AVX-512 on Intel CPUs but
not on AMD ones; oneDNN uses AVX-512 on both. So running the fp32 *training* products through
oneDNN wins on an AMD EPYC (Zen 5: step 1.7x faster) and loses on an Intel Xeon, where MKL is
already fast and oneDNN's extra weight transposes are pure cost (issue 19: S/16 0.87x,
B/16 0.96x timm). `onednn_fp32_training` is that rule, a pure function of a `CpuKind`, so the
tests can state it for every kind of CPU without owning one.

Standard library only: the model package may import this (it must not import `bench`).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

CPUINFO = "/proc/cpuinfo"
_VENDORS = {"AuthenticAMD": "amd", "GenuineIntel": "intel", "HygonGenuine": "amd"}


@dataclass(frozen=True)
class CpuKind:
    """vendor: ``"amd"``, ``"intel"``, ``"arm"`` or ``"other"``; model: its marketing name;
    flags: the feature flags (``avx512f``, ``amx_bf16``...) as the kernel lists them."""

    vendor: str
    model: str
    flags: frozenset[str]

    @property
    def signature(self) -> str:
        """The flags as one string: what a kernel built with ``-march=native`` depends on."""
        return " ".join(sorted(self.flags))


def parse_cpuinfo(text: str, machine: str = "") -> CpuKind:
    """The `CpuKind` described by the text of ``/proc/cpuinfo`` (its first processor)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields:
            fields[key] = value.strip()
    vendor = _VENDORS.get(fields.get("vendor_id", ""), "")
    if not vendor:
        is_arm = "CPU implementer" in fields or machine.lower().startswith(("arm", "aarch64"))
        vendor = "arm" if is_arm else "other"
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware") or machine
    flags = fields.get("flags") or fields.get("Features") or ""
    return CpuKind(vendor=vendor, model=model, flags=frozenset(flags.split()))


@functools.cache
def this_cpu() -> CpuKind:
    """The CPU this process runs on (``vendor="other"`` where ``/proc/cpuinfo`` is absent)."""
    try:
        with open(CPUINFO, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        text = ""
    kind = parse_cpuinfo(text, platform.machine())
    if not kind.model:
        kind = CpuKind(kind.vendor, platform.processor() or platform.machine(), kind.flags)
    return kind


def onednn_fp32_training(kind: CpuKind) -> bool:
    """Whether fp32 *training* products should run in oneDNN rather than ATen (MKL).

    Only on AMD CPUs with AVX-512: there MKL falls back to AVX2 kernels and oneDNN's
    AVX-512 ones win despite the weight transposes the oneDNN path adds (measured: Zen 5,
    S/16 fp32 training step 1.78x, B/16 1.72x timm; 1.15x / 1.12x through MKL). On Intel
    MKL uses AVX-512 itself and the transposes make the step slower than timm's; without
    AVX-512 neither library has the wider kernels, so the plain ATen path is kept.
    """
    return kind.vendor == "amd" and "avx512f" in kind.flags
