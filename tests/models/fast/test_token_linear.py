"""token_linear: W·x + b along the channel axis in each form, and which form runs where."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mixer_testing import EPYC, randomised, record_results
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.cpu_kind import cap_flags, parse_cpuinfo, this_cpu
from mlpmixer.models.fast import layers, pieces
from mlpmixer.models.fast import token_linear as token_products
from mlpmixer.models.fast.token_linear import AFTER, FORMS, INSIDE, LAYOUTS, ONE_LINEAR
from mlpmixer.models.plain import PlainMixer

AVX2_EPYC = cap_flags(parse_cpuinfo(EPYC), {"ONEDNN_MAX_CPU_ISA": "AVX2"})  # no native bf16
AVX512_NO_BF16 = cap_flags(parse_cpuinfo(EPYC), {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
CONFIG = MixerConfig(
    img_size=(16, 16), patch_size=(4, 4), in_chans=3, num_classes=5, hidden_dim=24,
    num_blocks=2, tokens_mlp_dim=12, channels_mlp_dim=48,
)  # fmt: skip


def _operands(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 5, generator=g, dtype=dtype)
    b = torch.randn(6, generator=g, dtype=dtype)
    x = torch.randn(3, 5, 7, generator=g, dtype=dtype)
    return w, b, x


def _numpy(w, b, x):
    w, b, x = (t.detach().double().numpy() for t in (w, b, x))
    return np.einsum("ms,bsc->bmc", w, x) + b[None, :, None]


def test_split_only_for_reduced_precision_on_cpu():
    w, _, x = _operands(torch.float32)
    assert not token_products.split_bias(w, x)
    assert token_products.split_bias(w.bfloat16(), x.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert token_products.split_bias(w, x)


@pytest.mark.parametrize("form", [*FORMS, LAYOUTS, None])
def test_values_equal_numpy_in_float64(form):
    w, b, x = _operands()
    out = token_products.token_linear(w, b, x, form)
    assert out.shape == (3, 6, 7)
    np.testing.assert_allclose(out.numpy(), _numpy(w, b, x), rtol=1e-12, atol=1e-12)
    no_bias = token_products.token_linear(w, None, x, form).numpy()
    np.testing.assert_allclose(no_bias, _numpy(w, 0 * b, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", [AFTER, ONE_LINEAR, LAYOUTS])
def test_gradients_equal_baddbmm_in_float64(form):
    grads = []
    for each in (INSIDE, form):
        w, b, x = (t.requires_grad_() for t in _operands())
        (token_products.token_linear(w, b, x, each) * torch.linspace(-1, 1, 7)).sum().backward()
        grads.append([w.grad, b.grad, x.grad])
    for plain, other in zip(*grads, strict=True):
        torch.testing.assert_close(other, plain, atol=1e-10, rtol=0)


def test_one_linear_equals_baddbmm_in_float32():
    w, b, x = _operands(torch.float32, seed=2)
    expected = token_products.token_linear(w, b, x, INSIDE)
    out = token_products.token_linear(w, b, x, ONE_LINEAR)
    assert ((out - expected).abs().max() / expected.abs().max()).item() < 1e-6


@pytest.mark.parametrize("form", [*FORMS, LAYOUTS, None])
@pytest.mark.parametrize("autocast", [False, True])
def test_bf16_within_2e_2_of_numpy(autocast, form):
    w, b, x = _operands(torch.float32, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        args = (w, b, x) if autocast else (w.bfloat16(), b.bfloat16(), x.bfloat16())
        out = token_products.token_linear(*args, form)
    assert out.dtype == torch.bfloat16
    ref = _numpy(w, b, x)
    rel = np.abs(out.float().numpy() - ref).max() / np.abs(ref).max()
    assert rel < 2e-2


# --- the layer in each form against the plain layer -------------------------------------------


@pytest.fixture
def models():
    fast = randomised(MlpMixer(CONFIG), seed=4)
    return fast, PlainMixer.from_model(fast)


def _forced(monkeypatch, form):
    monkeypatch.setattr(layers, "form_choice", lambda *_: form)


@pytest.mark.parametrize("form", [*FORMS, LAYOUTS])
def test_each_form_gives_the_plain_models_logits_and_gradients(form, models, monkeypatch):
    _forced(monkeypatch, form)
    fast, plain = models
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fast.eval()(images), plain.eval()(images), atol=1e-5, rtol=0)
    for model in (fast, plain):
        model.train().zero_grad()
        (model(images) * torch.linspace(-1, 1, 5)).sum().backward()
    for (name, p), q in zip(fast.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("form", [*FORMS, LAYOUTS])
def test_each_form_in_bf16_autocast_within_2e_2_of_plain_fp32(form, models, monkeypatch):
    _forced(monkeypatch, form)
    fast, plain = models
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = plain.eval()(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fast.eval()(images)
    assert ((out.float() - expected).abs().max() / expected.abs().max()).item() < 2e-2


# --- which form runs: a rule on the measured CPUs, a probe elsewhere --------------------------


def test_the_candidates_per_dtype():
    assert token_products.candidates(torch.float32) == (ONE_LINEAR, INSIDE)
    assert token_products.candidates(torch.float32, True) == (ONE_LINEAR, INSIDE)
    assert token_products.candidates(torch.bfloat16) == (AFTER, ONE_LINEAR, INSIDE)
    assert token_products.candidates(torch.float16) == FORMS
    assert token_products.candidates(torch.bfloat16, True) == (AFTER, LAYOUTS, ONE_LINEAR, INSIDE)


@pytest.mark.parametrize("training", [False, True])
def test_a_measured_cpu_takes_the_rule_in_each_dtype_and_mode(
    decide_on, training, monkeypatch, cache
):
    seen = decide_on(parse_cpuinfo(EPYC))
    assert token_products.form_choice(torch.float32, training, 8, 16, 24) == INSIDE
    assert token_products.form_choice(torch.bfloat16, training, 8, 16, 24) == AFTER
    assert not seen
    mode = "training" if training else "inference"
    cases = [d.case for d in pieces.decisions()]
    assert cases == [f"float32, {mode}, S=16, D_S=8, C=24", f"bfloat16, {mode}, S=16, D_S=8, C=24"]


@pytest.mark.parametrize("kind", [AVX2_EPYC, AVX512_NO_BF16], ids=["avx2", "avx512-no-bf16"])
def test_a_cpu_without_native_bf16_probes_and_takes_the_one_linear_where_it_wins(
    decide_on, kind, monkeypatch, cache
):
    """Issue 25 item 4, regression: under the AVX2 caps the bf16 token products ran per image
    (bf16-autocast inference 0.69x timm); the one linear over (B·C, S) measured 4-5x."""
    seen = decide_on(kind, {AFTER: 1.0, ONE_LINEAR: 0.6, INSIDE: 1.0})
    for training in (False, True):
        assert token_products.form_choice(torch.bfloat16, training, 8, 16, 24) == ONE_LINEAR
        assert seen[-1] == list(token_products.candidates(torch.bfloat16, training))
        assert pieces.decisions()[-1].why == "measured 1.67x"
    # and where it loses, the probe keeps the plain form (dtype by dtype, mode by mode)
    seen = decide_on(kind, {ONE_LINEAR: 1.2, INSIDE: 1.0})
    assert token_products.form_choice(torch.float32, False, 8, 16, 24) == INSIDE
    assert seen[-1] == [ONE_LINEAR, INSIDE]


def test_a_form_that_computes_something_else_is_never_timed(decide_on, monkeypatch, cache):
    seen = decide_on(AVX2_EPYC, {ONE_LINEAR: 0.1})
    real = token_products.F.linear
    monkeypatch.setattr(token_products.F, "linear", lambda x, w, b: real(x, w, b) * 1.01)
    assert token_products.form_choice(torch.float32, False, 8, 16, 24) == INSIDE
    assert not seen and "one linear over (B·C, S) differs by" in pieces.decisions()[-1].why
    # in training the probe compares the gradients too: the same values, wrong weight gradients
    monkeypatch.setattr(
        token_products.F, "linear", lambda x, w, b: real(x, w + (w - w.detach()) / 2, b)
    )
    assert token_products.form_choice(torch.float32, True, 8, 16, 24) == INSIDE
    assert not seen and "one linear over (B·C, S) differs by" in pieces.decisions()[-1].why


def test_the_layer_runs_the_decided_form(decide_on, monkeypatch, cache):
    """Under a no-native-bf16 CPU description the bf16-autocast token MLP runs as two
    `F.linear` over (B·C, S) (not `bmm` per image); fp32 keeps `baddbmm`."""
    decide_on(AVX2_EPYC, {ONE_LINEAR: 0.5})
    model = randomised(MlpMixer(CONFIG), seed=1).eval()
    images = torch.randn(2, 3, 16, 16)
    linear = record_results(monkeypatch, layers.F, "linear")
    token = record_results(monkeypatch, layers, "token_linear")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(images)
    assert not token and len(linear) >= 2 * CONFIG.num_blocks
    decide_on(AVX2_EPYC, {ONE_LINEAR: 2.0})
    with torch.no_grad():
        model(images)
    assert len(token) == 2 * CONFIG.num_blocks


@pytest.mark.slow
@pytest.mark.skipif(
    "avx2" not in this_cpu().flags or "avx512_bf16" not in this_cpu().flags,
    reason="needs an x86 CPU with native bf16 to cap",
)
def test_under_the_avx2_caps_bf16_token_products_run_as_one_linear(tmp_path):
    """Issue 25 item 4, regression, end to end: a model with S/16's token shapes, in a process
    under the AVX2 caps (bf16 emulated, no rule: the real probe decides), runs its bf16-autocast
    token products as one product over (B·C, S), not per image inside ``bmm`` (measured there:
    the token MLP's products 4-5x faster; the margin is far above a probe's noise)."""
    code = """if 1:
        import torch
        from mlpmixer import MixerConfig, MlpMixer
        config = MixerConfig(img_size=(224, 224), patch_size=(16, 16), hidden_dim=64,
                             num_blocks=1, tokens_mlp_dim=256, channels_mlp_dim=128)
        model, images = MlpMixer(config).eval(), torch.randn(2, 3, 224, 224)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(images)  # (decides)
            with torch.profiler.profile() as prof:
                model(images)
        print(sorted({e.key for e in prof.key_averages() if "mm" in e.key or "linear" in e.key}))
    """
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2",
               MKL_ENABLE_INSTRUCTIONS="AVX2", MLPMIXER_PIECES="auto", MLPMIXER_FAST="1",
               MLPMIXER_CACHE=str(tmp_path))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    ops = done.stdout
    assert "aten::bmm" not in ops and "aten::baddbmm" not in ops, ops
