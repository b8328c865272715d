"""token_products.token_linear: W·x + b along the channel axis, with the bias inside or after the product."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpmixer.models.fast import token_linear as token_products


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


@pytest.mark.parametrize("split", [False, True])
def test_values_equal_numpy_in_float64(split, monkeypatch):
    monkeypatch.setattr(token_products, "split_bias", lambda *_: split)
    w, b, x = _operands()
    out = token_products.token_linear(w, b, x)
    np.testing.assert_allclose(out.numpy(), _numpy(w, b, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(token_products.token_linear(w, None, x).numpy(), _numpy(w, 0 * b, x))


def test_split_gradients_equal_baddbmm_in_float64(monkeypatch):
    grads = []
    for split in (False, True):
        monkeypatch.setattr(token_products, "split_bias", lambda *_, s=split: s)
        w, b, x = (t.requires_grad_() for t in _operands())
        (token_products.token_linear(w, b, x) * torch.linspace(-1, 1, 7)).sum().backward()
        grads.append([w.grad, b.grad, x.grad])
    for plain, split in zip(*grads, strict=True):
        torch.testing.assert_close(split, plain, atol=1e-10, rtol=0)


@pytest.mark.parametrize("autocast", [False, True])
def test_bf16_within_2e_2_of_numpy(autocast):
    w, b, x = _operands(torch.float32, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        args = (w, b, x) if autocast else (w.bfloat16(), b.bfloat16(), x.bfloat16())
        out = token_products.token_linear(*args)
    assert out.dtype == torch.bfloat16
    ref = _numpy(w, b, x)
    rel = np.abs(out.float().numpy() - ref).max() / np.abs(ref).max()
    assert rel < 2e-2
