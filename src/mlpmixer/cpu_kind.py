"""What kind of CPU this is (read once from ``/proc/cpuinfo``), and the rules that depend on it.

`this_cpu` is the hardware as the kernel lists it (what ``-march=native`` builds for);
`effective_cpu` is the same CPU as the libraries will use it: oneDNN, ATen and MKL each honour
an instruction-set cap from the environment (``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``,
``MKL_ENABLE_INSTRUCTIONS``), and a flag above any cap is dropped (`cap_flags`). So
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2`` makes an
AVX-512 machine decide, and test, as an AVX2-only one does (docs/troubleshooting.md).

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
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, replace

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


# The instruction-set caps each library reads, and what each cap level leaves out. Levels are
# matched on the lower-cased value's start; unknown values (ALL, DEFAULT...) cap nothing.
CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
_WIDE = ("avx512", "amx", "avx10", "avx_vnni", "avx_ne_convert")  # beyond AVX2
_BEYOND_AVX512_CORE = ("avx512_bf16", "avx512_fp16", "amx", "avx10")  # native bf16/fp16 units
_CAPS = (  # (level prefix, flag prefixes dropped); checked in this order
    ("avx512_core_bf16", ("avx512_fp16", "amx", "avx10")),
    ("avx512_core_vnni", _BEYOND_AVX512_CORE),
    ("avx512_core", _BEYOND_AVX512_CORE),
    ("avx512_e", _BEYOND_AVX512_CORE),  # MKL's AVX512_E1..E4
    ("avx512", _BEYOND_AVX512_CORE),  # ATen's avx512, MKL's AVX512
    ("avx10", ()),  # AVX10 levels include all of AVX-512
    ("amx", ()),
    ("avx2", _WIDE),
    ("avx", (*_WIDE, "avx2", "fma")),
    ("sse", (*_WIDE, "avx", "avx2", "fma", "f16c")),
)


def _dropped_by(value: str) -> tuple[str, ...]:
    level = value.strip().lower()
    for prefix, dropped in _CAPS:
        if level.startswith(prefix):
            return dropped
    return ()


def cap_flags(kind: CpuKind, env: Mapping[str, str]) -> CpuKind:
    """``kind`` without the flags that the instruction-set caps in ``env`` forbid the libraries
    (a flag above the lowest cap of `CAP_VARIABLES` is dropped)."""
    dropped = tuple(p for name in CAP_VARIABLES for p in _dropped_by(env.get(name, "")))
    if not dropped:
        return kind
    return replace(kind, flags=frozenset(f for f in kind.flags if not f.startswith(dropped)))


@functools.cache
def effective_cpu() -> CpuKind:
    """`this_cpu` as oneDNN, ATen and MKL may use it here: their ISA caps applied (read once)."""
    return cap_flags(this_cpu(), os.environ)


def native_bf16(kind: CpuKind) -> bool:
    """Whether the CPU has bf16 product instructions (AVX512_BF16, AMX, AVX-NE-CONVERT, Arm bf16)."""
    return bool(kind.flags & {"avx512_bf16", "amx_bf16", "avx_ne_convert", "bf16"})


INT8_UNIT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def int8_units(kind: CpuKind) -> bool:
    """Whether the CPU has int8 dot-product units (VNNI or AMX): without them oneDNN's
    uint8 x int8 products are slower than fp32 and add pairs in 16 bits, which saturate."""
    return bool(kind.flags & INT8_UNIT_FLAGS)


def native_fp16(kind: CpuKind) -> bool:
    """Whether the CPU has fp16 arithmetic (AVX512_FP16, AMX-FP16, Arm fphp/asimdhp)."""
    return bool(kind.flags & {"avx512_fp16", "amx_fp16", "asimdhp"})


def measured_kind(kind: CpuKind) -> str | None:
    """The name of the kind of CPU the fast path's rules were measured on, or None.

    ``amd-avx512-bf16`` (EPYC Zen 4/5) and ``intel-avx512-bf16`` (Xeon Sapphire/Emerald
    Rapids): AVX-512 with bf16 instructions. Any other CPU (AVX2 only, AVX-512 without bf16,
    Arm, unknown) is measured instead of guessed (`models.fast.pieces`).
    """
    if "avx512f" not in kind.flags or not native_bf16(kind):
        return None
    return {"amd": "amd-avx512-bf16", "intel": "intel-avx512-bf16"}.get(kind.vendor)


def onednn_fp32_training(kind: CpuKind) -> bool:
    """Whether fp32 *training* products should run in oneDNN rather than ATen (MKL).

    Only on AMD CPUs with AVX-512: there MKL falls back to AVX2 kernels and oneDNN's
    AVX-512 ones win despite the weight transposes the oneDNN path adds (measured: Zen 5,
    S/16 fp32 training step 1.78x, B/16 1.72x timm; 1.15x / 1.12x through MKL). On Intel
    MKL uses AVX-512 itself and the transposes make the step slower than timm's; without
    AVX-512 neither library has the wider kernels, so the plain ATen path is kept.
    """
    return kind.vendor == "amd" and "avx512f" in kind.flags
