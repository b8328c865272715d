"""The fused tanh-GELU kernel against ``F.gelu`` and the closed form, and its fallbacks.

The kernel evaluates x·σ(2u) instead of 0.5·x·(1 + tanh u); these tests hold it to the float64
closed form (NumPy's tanh, independent of both torch paths) and to ATen, forward and backward,
and check that every case it does not handle goes to ``F.gelu`` unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlpmixer.models.fast import gelu as gelu_module
from mlpmixer.models.fast.gelu import GELU, fused_available, gelu, gelu_

needs_kernel = pytest.mark.skipif(not fused_available(), reason="no C compiler: fallback only")


def _closed_form(x: torch.Tensor) -> np.ndarray:
    v = x.double().numpy()
    return 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))


def _closed_form_grad(x: torch.Tensor) -> np.ndarray:
    v = x.double().numpy()
    k = math.sqrt(2.0 / math.pi)
    t = np.tanh(k * (v + 0.044715 * v**3))
    return 0.5 * (1 + t) + 0.5 * v * (1 - t**2) * k * (1 + 3 * 0.044715 * v**2)


def _inputs(dtype: torch.dtype, n: int = 50_000) -> torch.Tensor:
    """Normal values, a wide range (±40: saturated tails), and n not a multiple of any vector."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(n, generator=g) * 2, torch.linspace(-40, 40, 4001)])
    return x.to(dtype)


def test_compiler_present_means_kernel_built():
    """Where a C compiler exists (CI), the kernel must build: a silent fallback is a defect."""
    if gelu_module.kernel_cache.compiler() is not None and gelu_module.fused_enabled():
        assert fused_available()


@needs_kernel
@pytest.mark.parametrize(
    ("dtype", "atol"), [(torch.float32, 2e-6), (torch.bfloat16, 0.0), (torch.float64, 1e-13)]
)
def test_forward_matches_closed_form(dtype, atol):
    x = _inputs(dtype)
    fused = gelu(x, "tanh")
    aten = F.gelu(x, approximate="tanh")
    expected = _closed_form(x)
    assert fused.dtype == dtype
    err = np.abs(fused.double().numpy() - expected)
    if dtype == torch.bfloat16:  # one rounding of the float32 result: within one bf16 step
        # (the closed form underflows to 0 below x ≈ -7 where x·σ(2u) keeps ~1e-17: atol)
        assert (err <= np.abs(expected) * 2**-8 + 1e-12).all()
        # and never further from the exact value than ATen's bf16 result, beyond one step
        assert (fused.float() - aten.float()).abs().max().item() <= aten.float().abs().max() / 128
    else:
        assert err.max() <= atol * max(1.0, np.abs(expected).max() / 40)
        # the kernel really ran: its rounding differs from ATen's somewhere
        assert not torch.equal(fused, aten)


@needs_kernel
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 5e-6), (torch.float64, 1e-12)])
def test_backward_matches_closed_form(dtype, atol):
    x = _inputs(dtype).requires_grad_()
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    gelu(x, "tanh").backward(grad_out)
    expected = grad_out.double().numpy() * _closed_form_grad(x.detach())
    np.testing.assert_allclose(x.grad.double().numpy(), expected, atol=atol, rtol=0)


@needs_kernel
def test_bf16_backward_within_one_rounding_of_aten():
    x = _inputs(torch.bfloat16).requires_grad_()
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).bfloat16()
    gelu(x, "tanh").backward(grad_out)
    fused = x.grad.float()
    x.grad = None
    F.gelu(x, approximate="tanh").backward(grad_out)
    assert (fused - x.grad.float()).abs().max().item() <= x.grad.float().abs().max() / 128


@needs_kernel
def test_gradcheck_and_double_backward():
    x = torch.randn(300, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gelu(t, "tanh"), (x,))
    assert torch.autograd.gradgradcheck(lambda t: gelu(t, "tanh"), (x,))


@needs_kernel
def test_in_place_overwrites_and_equals_out_of_place():
    x = _inputs(torch.float32)
    expected = gelu(x, "tanh")
    y = x.clone()
    out = gelu_(y, "tanh")
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(y, expected, atol=0, rtol=0)


def test_module_is_a_drop_in_for_nn_gelu():
    module = GELU(approximate="tanh")
    assert isinstance(module, torch.nn.GELU) and module.approximate == "tanh"
    x = torch.randn(64, 33)
    torch.testing.assert_close(module(x), F.gelu(x, approximate="tanh"), atol=2e-6, rtol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(40, 30).t(),  # not contiguous
        lambda: torch.randn(100, dtype=torch.float16),  # dtype without a kernel
        lambda: torch.randn(0),  # empty
    ],
)
def test_unhandled_tensors_go_to_aten_unchanged(make):
    x = make()
    torch.testing.assert_close(gelu(x, "tanh"), F.gelu(x, approximate="tanh"), atol=0, rtol=0)


def test_erf_form_is_aten():
    x = torch.randn(1000)
    torch.testing.assert_close(gelu(x), F.gelu(x), atol=0, rtol=0)
    torch.testing.assert_close(gelu_(x.clone(), "none"), F.gelu(x), atol=0, rtol=0)


def test_disabled_by_environment_is_aten(monkeypatch):
    monkeypatch.setenv("MLPMIXER_FUSED_GELU", "0")
    gelu_module.pieces.reset()  # (the switch is read when the pieces are decided)
    assert not fused_available() and not gelu_module.use_fused(torch.float32)
    x = torch.randn(5000, requires_grad=True)
    torch.testing.assert_close(gelu(x, "tanh"), F.gelu(x, approximate="tanh"), atol=0, rtol=0)


def test_no_compiler_falls_back(monkeypatch, tmp_path):
    """A machine without a C compiler (or a failed build) computes with ATen."""
    monkeypatch.setattr(gelu_module.kernel_cache, "compiler", lambda: None)
    gelu_module._library.cache_clear()
    try:
        assert not fused_available()
        x = torch.randn(5000)
        torch.testing.assert_close(gelu(x, "tanh"), F.gelu(x, approximate="tanh"), atol=0, rtol=0)
    finally:
        gelu_module._library.cache_clear()


def test_failed_build_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPMIXER_CACHE", str(tmp_path))
    monkeypatch.setattr(gelu_module, "SOURCE", tmp_path / "broken.c")
    (tmp_path / "broken.c").write_text("this is not C\n")
    gelu_module._library.cache_clear()
    try:
        if gelu_module.kernel_cache.compiler() is None:
            pytest.skip("no C compiler")
        assert not fused_available()
        assert not list((tmp_path / "ops").glob("*.so"))  # nothing half-written in the cache
    finally:
        gelu_module._library.cache_clear()


@needs_kernel
def test_builds_into_a_fresh_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPMIXER_CACHE", str(tmp_path))
    gelu_module._library.cache_clear()
    try:
        assert fused_available()
        assert len(list((tmp_path / "ops").glob("gelu_kernel-*.so"))) == 1
        x = torch.randn(3000)
        np.testing.assert_allclose(gelu(x, "tanh").double().numpy(), _closed_form(x), atol=2e-6)
    finally:
        gelu_module._library.cache_clear()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_traced_code_uses_aten():
    x = torch.randn(100)
    traced = torch.jit.trace(lambda t: gelu(t, "tanh"), (x,))
    assert "gelu" in str(traced.graph)


def test_dispatch_modes_see_one_registered_op():
    """FlopCounterMode and other dispatch modes see the fused GELU as one op, mlpmixer::gelu_tanh."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(1000)
    with Record() as record:
        y = gelu(x, "tanh")
    assert record.ops == ["mlpmixer.gelu_tanh.default"]
    torch.testing.assert_close(y, F.gelu(x, approximate="tanh"), atol=2e-6, rtol=0)


def test_fake_tensors_and_meta_go_through_the_fake_implementation():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        y = gelu(torch.empty(4, 5), "tanh")
    assert y.shape == (4, 5)
    assert gelu(torch.empty(3, device="meta"), "tanh").device.type == "meta"


def test_the_op_is_checked_by_torch_library():
    """torch.library's own consistency checks: schema, fake, autograd registration."""
    x = torch.randn(64, requires_grad=True)
    torch.library.opcheck(torch.ops.mlpmixer.gelu_tanh.default, (x,))
    torch.library.opcheck(
        torch.ops.mlpmixer.gelu_tanh_backward.default, (torch.randn(64), x.detach())
    )


def test_compiled_code_runs_the_standard_gelu():
    """Under torch.compile the graph keeps aten.gelu (inductor fuses it), never our kernel."""
    f = torch.compile(lambda t: gelu(t, "tanh"), backend="aot_eager", fullgraph=True)
    x = torch.randn(100)
    torch.testing.assert_close(f(x), F.gelu(x, approximate="tanh"), atol=0, rtol=0)
