"""Static int8 on CPUs without VNNI/AMX: 7-bit activations, so the int8 products cannot saturate.

Without int8 dot-product units oneDNN's uint8 x int8 kernels add pairs of products in 16 bits
(``vpmaddubsw``): full-range activations (0..255) times int8 weights overflow it (2 * 255 *
127 > 32767). The first test shows that on oneDNN's own kernel under the AVX2 caps; the others
hold the choice the library makes from it, and that the int8 folder keeps it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

import mlpmixer.cpu_kind as cpu_kind
from deploy_testing import images, needs_torchao, tiny
from mlpmixer.cpu_kind import CpuKind
from mlpmixer.deploy import load_quantized, quantize, save_quantized
from mlpmixer.deploy import static as static_module
from mlpmixer.deploy.static import default_activation_bits
from mlpmixer.deploy.storage import MANIFEST
from mlpmixer.errors import ConfigError

AVX2_CAPS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
ZEN1 = CpuKind("amd", "AMD EPYC 7551", frozenset({"avx", "avx2", "fma", "sse4_2"}))
ZEN4 = CpuKind("amd", "AMD EPYC 9R14", frozenset({"avx2", "avx512f", "avx512_vnni"}))
SAPPHIRE_RAPIDS = CpuKind("intel", "Xeon 8480", frozenset({"avx2", "amx_int8", "amx_bf16"}))

# One int8 GEMM through oneDNN's kernel, against its exact integer result; prints the
# largest error for activations in 0..255 and in 0..127.
KERNEL = """
import json, torch
torch.manual_seed(0)
m, k, n = 64, 256, 64
w = torch.randint(-127, 128, (n, k), dtype=torch.int8)
packed = torch.ops.onednn.qlinear_prepack(w, [m, k])
errors = {}
for top in (255, 127):
    x = torch.randint(0, top + 1, (m, k), dtype=torch.uint8)
    x[:, ::2] = top  # pairs of large products: where 16-bit pair sums overflow
    exact = x.double() @ w.double().t()
    out = torch.ops.onednn.qlinear_pointwise.tensor(
        x, torch.tensor(1.0), torch.tensor(0), packed, torch.ones(n), torch.zeros(n, dtype=torch.long),
        None, 1.0, 0, torch.float32, "none", [None], "")
    errors[top] = float((out.double() - exact).abs().max() / exact.abs().max())
print(json.dumps(errors))
"""


def _kernel_errors(env: dict[str, str]) -> dict[str, float]:
    run = subprocess.run(
        [sys.executable, "-c", KERNEL], env={**os.environ, **env},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_without_vnni_full_range_int8_products_saturate_and_seven_bits_do_not():
    capped = _kernel_errors(AVX2_CAPS)
    assert capped["255"] > 0.01  # saturated: percent-level errors
    assert capped["127"] < 1e-6  # exact (up to float32 output)


@pytest.mark.parametrize(
    ("kind", "bits"), [(ZEN1, 7), (ZEN4, 8), (SAPPHIRE_RAPIDS, 8)], ids=["zen1", "zen4", "spr"]
)
def test_the_default_follows_the_cpus_int8_units(kind, bits):
    assert default_activation_bits(kind) == bits


def _activation_ranges(q) -> set[int]:
    """quant_max of every activation quantize node of a static model's graph."""
    return {
        int(node.args[4])
        for node in q.inner.graph.nodes
        if node.op == "call_function" and "quantize_per_tensor" in str(node.target)
    }


@needs_torchao
@pytest.mark.parametrize("bits", [7, 8])
def test_static_quantizes_activations_to_the_bits_asked_and_the_folder_keeps_them(bits, tmp_path):
    q = quantize(tiny(), "static", calibration=images(32), activation_bits=bits)
    assert _activation_ranges(q) == {2**bits - 1}
    assert f"{bits}-bit activations" in q.describe()
    save_quantized(q, tmp_path / "q")
    assert json.loads((tmp_path / "q" / MANIFEST).read_text())["activation_bits"] == bits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # on a CPU without VNNI the 8-bit one warns (below)
        loaded = load_quantized(tmp_path / "q")
    assert loaded.activation_bits == bits and _activation_ranges(loaded) == {2**bits - 1}
    x = images(5, seed=3)
    with torch.no_grad():
        assert torch.equal(loaded(x), q(x))


@needs_torchao
def test_on_a_cpu_without_int8_units_static_defaults_to_seven_bits(monkeypatch):
    monkeypatch.setattr(static_module, "effective_cpu", lambda: ZEN1)
    assert quantize(tiny(), "static", calibration=images(16)).activation_bits == 7
    monkeypatch.setattr(static_module, "effective_cpu", lambda: ZEN4)
    assert quantize(tiny(), "static", calibration=images(16)).activation_bits == 8


@needs_torchao
def test_a_full_range_model_loaded_on_a_cpu_without_int8_units_warns(monkeypatch, tmp_path):
    save_quantized(
        quantize(tiny(), "static", calibration=images(16), activation_bits=8), tmp_path / "q"
    )
    monkeypatch.setattr(cpu_kind, "effective_cpu", lambda: ZEN1)
    with pytest.warns(UserWarning, match="8-bit activations on a CPU without VNNI"):
        load_quantized(tmp_path / "q")
    monkeypatch.setattr(cpu_kind, "effective_cpu", lambda: ZEN4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_quantized(tmp_path / "q")


@needs_torchao
def test_other_bit_counts_are_refused_by_value():
    with pytest.raises(ConfigError, match="got 4"):
        quantize(tiny(), "static", calibration=images(8), activation_bits=4)
