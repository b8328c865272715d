"""Reading the CPU's kind from /proc/cpuinfo text, and the rules that depend on it."""

from __future__ import annotations

from mixer_testing import EPYC, XEON
from mlpmixer.cpu_kind import (
    CpuKind,
    cap_flags,
    native_bf16,
    native_fp16,
    onednn_fp32_training,
    parse_cpuinfo,
    this_cpu,
)

GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd sve bf16
CPU implementer\t: 0x41
"""


def test_vendor_model_and_flags_come_from_the_first_processor():
    amd = parse_cpuinfo(EPYC)
    assert amd == CpuKind(
        "amd", "AMD EPYC", frozenset({"fpu", "sse", "avx2", "avx512f", "avx512_bf16"})
    )
    intel = parse_cpuinfo(XEON)
    assert intel.vendor == "intel" and "amx_bf16" in intel.flags and intel.model.startswith("INTEL")
    arm = parse_cpuinfo(GRAVITON, machine="aarch64")
    assert arm.vendor == "arm" and "sve" in arm.flags and arm.model == "aarch64"
    assert parse_cpuinfo("", machine="x86_64") == CpuKind("other", "x86_64", frozenset())
    assert amd.signature == "avx2 avx512_bf16 avx512f fpu sse"


def test_onednn_fp32_training_products_only_on_amd_with_avx512():
    assert onednn_fp32_training(parse_cpuinfo(EPYC)) is True
    assert onednn_fp32_training(parse_cpuinfo(XEON)) is False  # MKL is fast on Intel
    no_avx512 = parse_cpuinfo(EPYC.replace(" avx512f", ""))
    assert onednn_fp32_training(no_avx512) is False
    assert onednn_fp32_training(parse_cpuinfo(GRAVITON)) is False


def test_this_cpu_is_read_once_and_names_a_model():
    kind = this_cpu()
    assert kind is this_cpu() and kind.model and kind.vendor in ("amd", "intel", "arm", "other")


ZEN4 = parse_cpuinfo(EPYC.replace("avx512_bf16", "avx512_bf16 avx512bw avx512vl fma amx_tile"))
AVX2_CAPS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}  # fmt: skip


def test_isa_caps_drop_the_flags_above_them():
    """ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY / MKL_ENABLE_INSTRUCTIONS make an AVX-512
    machine decide as an AVX2-only one (the libraries honour them; the flags must too)."""
    avx2 = cap_flags(ZEN4, AVX2_CAPS)
    assert avx2.flags == {"fpu", "sse", "avx2", "fma"} and avx2.vendor == "amd"
    assert not onednn_fp32_training(avx2) and onednn_fp32_training(ZEN4)
    assert cap_flags(ZEN4, {"ONEDNN_MAX_CPU_ISA": "avx2"}) == avx2  # any one cap, any case
    no_bf16 = cap_flags(ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
    assert "avx512f" in no_bf16.flags and not native_bf16(no_bf16) and native_bf16(ZEN4)
    assert cap_flags(ZEN4, {"MKL_ENABLE_INSTRUCTIONS": "AVX512_E1"}) == no_bf16
    assert cap_flags(ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}).flags == ZEN4.flags - {
        "amx_tile"
    }
    for uncapped in ({}, {"ONEDNN_MAX_CPU_ISA": "ALL"}, {"ATEN_CPU_CAPABILITY": "default"}):
        assert cap_flags(ZEN4, uncapped) == ZEN4
    assert avx2.signature != ZEN4.signature  # measured choices are kept apart


def test_native_fp16_only_with_fp16_units():
    assert not native_fp16(ZEN4)
    assert native_fp16(parse_cpuinfo(XEON.replace("amx_bf16", "amx_bf16 avx512_fp16")))
