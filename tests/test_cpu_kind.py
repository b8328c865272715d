"""Reading the CPU's kind from /proc/cpuinfo text, and the rules that depend on it."""

from __future__ import annotations

from mixer_testing import EPYC, XEON
from mlpmixer.cpu_kind import CpuKind, onednn_fp32_training, parse_cpuinfo, this_cpu

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
