"""layouts: a linear's training products with the left operands column-major (issue 25 item 4:
bf16 training where the CPU emulates bf16), the same numbers as ``F.linear``, and where it runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixer_testing import EPYC, randomised, record_results
from mlpmixer import MixerConfig, MlpMixer, measured_choice
from mlpmixer.cpu_kind import cap_flags, parse_cpuinfo
from mlpmixer.models.fast import layers, layouts, pieces
from mlpmixer.models.fast import token_linear as token_products
from mlpmixer.models.fast.layouts import LEFT_COLUMN_MAJOR, PLAIN
from mlpmixer.models.plain import PlainMixer

AVX2_EPYC = cap_flags(parse_cpuinfo(EPYC), {"ONEDNN_MAX_CPU_ISA": "AVX2"})  # bf16 emulated
CONFIG = MixerConfig(
    img_size=(16, 16), patch_size=(4, 4), in_chans=3, num_classes=5, hidden_dim=24,
    num_blocks=2, tokens_mlp_dim=12, channels_mlp_dim=48,
)  # fmt: skip


def _operands(dtype=torch.float64, seed=0, rows=7, k=5, n=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g, dtype=dtype)
    w = torch.randn(n, k, generator=g, dtype=dtype) / k**0.5
    b = torch.randn(n, generator=g, dtype=dtype)
    dy = torch.randn(rows, n, generator=g, dtype=dtype)
    return x, w, b, dy


def _forward_backward(fn, x, w, b, dy, autocast=False):
    leaves = [t.clone().requires_grad_() for t in (x, w, b) if t is not None]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = fn(*leaves) if b is not None else fn(*leaves, None)
    out.backward(dy.to(out.dtype))
    return [out, *(t.grad for t in leaves)]


def _relative(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def test_column_major_copies_only_what_is_not():
    x = torch.randn(4, 3)
    c = layouts.column_major(x)
    assert c.stride() == (1, 4) and torch.equal(c, x)
    assert layouts.column_major(c).data_ptr() == c.data_ptr()  # already: no copy
    # a same-dtype ``.to(memory_format=...)`` would keep a transposed view (the bug this avoids)
    cast = layouts.column_major(x, torch.bfloat16)
    assert cast.dtype == torch.bfloat16 and cast.stride() == (1, 4)
    assert torch.equal(cast, x.bfloat16())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("left", ["row-major", "column-major"])
def test_values_and_gradients_equal_f_linear_in_float64(left, bias):
    x, w, b, dy = _operands()
    if left == "column-major":
        x = x.t().contiguous().t()
    b = b if bias else None
    expected = _forward_backward(F.linear, x, w, b, dy)
    got = _forward_backward(lambda *a: layouts.linear(*a, torch.float64), x, w, b, dy)
    assert got[0].is_contiguous()
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


def test_under_bf16_autocast_fp32_leaves_get_the_plain_gradients():
    """fp32 master weights: the casts are autograd's, as autocast's are; the output within
    bf16 rounding of autocast's ``F.linear``, the weight and bias gradients the same products."""
    x, w, b, dy = _operands(torch.float32, seed=1, rows=40, k=24, n=48)
    expected = _forward_backward(F.linear, x, w, b, dy, autocast=True)
    got = _forward_backward(lambda *a: layouts.linear(*a, torch.bfloat16), x, w, b, dy, True)
    assert [t.dtype for t in got] == [torch.bfloat16, *(3 * [torch.float32])]
    for e, g in zip(expected, got, strict=True):
        assert _relative(g, e) < 2e-2
    torch.testing.assert_close(got[2], expected[2], atol=1e-6, rtol=1e-3)  # dW: dYᵀ @ X as well


def test_products_run_with_the_left_operand_column_major(monkeypatch):
    """The point of the piece: no product of a linear's training step has a row-major left
    operand with a row-major right one (ATen's emulated-bf16 GEMM's slowest layout)."""
    lefts = []
    real_mm, real_addmm = torch.mm, torch.addmm

    def mm(a, b_):
        lefts.append((a.stride(0) == 1, b_.is_contiguous()))
        return real_mm(a, b_)

    def addmm(c, a, b_):
        lefts.append((a.stride(0) == 1, b_.is_contiguous()))
        return real_addmm(c, a, b_)

    monkeypatch.setattr(layouts.torch, "mm", mm)
    monkeypatch.setattr(layouts.torch, "addmm", addmm)
    x, w, b, dy = _operands(torch.bfloat16, rows=9)
    _forward_backward(lambda *a: layouts.linear(*a, torch.bfloat16), x, w, b, dy)
    assert lefts == [(True, True)] * 3  # forward, dX, dW


# --- which runs: a rule on the CPUs with rules, a probe elsewhere ------------------------------


def test_a_cpu_that_emulates_bf16_probes_and_takes_the_layouts_where_they_win(
    decide_on, monkeypatch, cache
):
    """Issue 25 item 4, regression: under the AVX2 caps S/16 bf16-autocast training was 0.96x
    timm-erf; its channel products' input gradients ran row-major @ row-major (measured 8-15x
    slower than with the left operand column-major)."""
    seen = decide_on(AVX2_EPYC, {LEFT_COLUMN_MAJOR: 0.1, PLAIN: 1.0})
    assert layouts.choice(torch.bfloat16, 24, 48) == LEFT_COLUMN_MAJOR
    assert seen == [[LEFT_COLUMN_MAJOR, PLAIN]]
    assert pieces.decisions()[-1].why == "measured 10.00x"
    assert pieces.decisions()[-1].case == "bfloat16, 24x48"
    # where it loses, the plain linear; fp32 is never asked
    decide_on(AVX2_EPYC, {LEFT_COLUMN_MAJOR: 1.5, PLAIN: 1.0})
    assert layouts.choice(torch.float16, 24, 48) == PLAIN
    seen = decide_on(AVX2_EPYC)
    assert layouts.choice(torch.float32, 24, 48) == PLAIN and not seen


def test_a_cpu_with_rules_keeps_f_linear_and_the_switch_turns_it_off(decide_on, monkeypatch, cache):
    seen = decide_on(parse_cpuinfo(EPYC), {LEFT_COLUMN_MAJOR: 0.1})
    assert layouts.choice(torch.bfloat16, 24, 48) == PLAIN and not seen
    assert pieces.decisions()[-1].why == "rule: amd-avx512-bf16"
    seen = decide_on(AVX2_EPYC, {LEFT_COLUMN_MAJOR: 0.1})
    monkeypatch.setenv("MLPMIXER_LAYOUTS", "0")
    assert layouts.choice(torch.bfloat16, 24, 48) == PLAIN and not seen
    assert pieces.decisions()[-1].why == "off: MLPMIXER_LAYOUTS=0"
    assert token_products.LAYOUTS not in token_products.candidates(torch.bfloat16, True)


def test_a_wrong_gradient_is_never_timed(decide_on, monkeypatch, cache):
    """The probe checks the five gradients, not only the output."""
    seen = decide_on(AVX2_EPYC, {LEFT_COLUMN_MAJOR: 0.1})
    real = layouts._LeftColumnMajor.backward

    def wrong(ctx, grad):
        dx, dw, db = real(ctx, grad)
        return dx, dw * 1.1, db

    monkeypatch.setattr(layouts._LeftColumnMajor, "backward", staticmethod(wrong))
    assert layouts.choice(torch.bfloat16, 24, 48) == PLAIN and not seen
    assert "left operands column-major differs by" in pieces.decisions()[-1].why


def test_a_choice_stored_among_fewer_candidates_is_probed_again(decide_on, monkeypatch, cache):
    """Regression: the stored choices were keyed by the piece and case alone, so a cache
    written before the `LAYOUTS` token form existed (``baddbmm``, 1.00x under the AVX2 caps)
    answered for ever, and the new form was never measured."""
    decide_on(AVX2_EPYC, {token_products.INSIDE: 1.0})
    monkeypatch.setenv("MLPMIXER_LAYOUTS", "0")  # (the candidates before the new form)
    assert token_products.form_choice(torch.bfloat16, True, 8, 16, 24) == token_products.INSIDE
    monkeypatch.delenv("MLPMIXER_LAYOUTS")
    pieces.reset()
    measured_choice._memo.clear()  # a new process
    seen = decide_on(AVX2_EPYC, {token_products.LAYOUTS: 0.3})
    assert token_products.form_choice(torch.bfloat16, True, 8, 16, 24) == token_products.LAYOUTS
    assert seen == [list(token_products.candidates(torch.bfloat16, True))]


# --- the layers ---------------------------------------------------------------------------------


@pytest.fixture
def models():
    fast = randomised(MlpMixer(CONFIG), seed=4)
    return fast, PlainMixer.from_model(fast)


def _gradients(model, images, autocast):
    model.train().zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(images)
    (out.float() * torch.linspace(-1, 1, 5)).sum().backward()
    return {name: p.grad for name, p in model.named_parameters()}


def test_the_layers_run_the_layouts_and_give_the_plain_models_gradients(models, monkeypatch):
    """The channel MLPs through `layouts.linear`, the token MLPs in the `LAYOUTS` form, in
    bf16-autocast training: each gradient as close to the plain model's fp32 gradient as the
    plain model's own bf16-autocast one is (some, like the token biases', are sums that cancel
    to bf16 noise in both); float64 training through the same code: the plain gradients."""
    monkeypatch.setattr(layers.layouts, "choice", lambda *_: LEFT_COLUMN_MAJOR)
    monkeypatch.setattr(layers, "form_choice", lambda *_: token_products.LAYOUTS)
    calls = record_results(monkeypatch, layouts._LeftColumnMajor, "apply")
    fast, plain = models
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    got, bf16 = _gradients(fast, images, True), _gradients(plain, images, True)
    assert len(calls) == 4 * CONFIG.num_blocks  # two channel and two token products per block
    exact = _gradients(plain, images, False)
    for name, grad in got.items():
        assert grad.dtype == torch.float32
        ours = (grad - exact[name]).abs().max()
        theirs = (bf16[name] - exact[name]).abs().max()
        assert ours <= 2 * theirs + 1e-3 * exact[name].abs().max(), name
    fast, plain = fast.double(), plain.double()
    got = _gradients(fast, images.double(), False)
    expected = _gradients(plain, images.double(), False)
    for name, grad in got.items():
        torch.testing.assert_close(grad, expected[name], atol=1e-10, rtol=1e-10, msg=name)


def test_the_plain_choice_keeps_the_plain_path(models, monkeypatch):
    monkeypatch.setattr(layers.layouts, "choice", lambda *_: PLAIN)
    calls = record_results(monkeypatch, layouts._LeftColumnMajor, "apply")
    fast, _ = models
    images = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast.train()(images).float().sum().backward()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast.eval()(images)
    fast.train()(images).sum().backward()  # fp32 training: never asked
    assert not calls
