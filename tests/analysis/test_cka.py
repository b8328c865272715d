"""Linear CKA: its defining properties, an independent formula, and the Mixer's layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer_testing import randomised
from mlpmixer import ConfigError, create_model
from mlpmixer.analysis.cka import cka_matrix, layer_grams, linear_cka


def feature_space_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s feature-space form ||YcᵀXc||²_F / (||XcᵀXc||_F ||YcᵀYc||_F)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The HSIC form with an explicit centring matrix H = I - 11ᵀ/n."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.trace(k @ l_) / np.sqrt(np.trace(k @ k) * np.trace(l_ @ l_))


def _random_orthogonal(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 30),
    p=st.integers(1, 20),
    q=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_cka_properties_and_independent_formulas(n, p, q, seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) + rng.standard_normal(p)  # non-zero means: centring matters
    y = np.tanh(x @ rng.standard_normal((p, q))) + 0.3 * rng.standard_normal((n, q))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    value = linear_cka(xt, yt)
    assert value == pytest.approx(feature_space_cka(x, y), abs=1e-9)
    assert value == pytest.approx(hsic_cka(x, y), abs=1e-9)
    assert 0.0 <= value <= 1.0 + 1e-12
    assert linear_cka(xt, xt) == pytest.approx(1.0, abs=1e-12)
    rotated = torch.from_numpy(scale * x @ _random_orthogonal(p, seed + 1))
    assert linear_cka(rotated, yt) == pytest.approx(value, abs=1e-9)  # orthogonal + isotropic
    shifted = xt + torch.from_numpy(rng.standard_normal(p))  # constant offsets are centred away
    assert linear_cka(shifted, yt) == pytest.approx(value, abs=1e-9)


def test_cka_is_not_invariant_to_anisotropic_scaling():
    """A check that the test above could fail: per-feature scaling does change linear CKA."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    y[:, 0] += 3 * x[:, 0]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    stretched = xt * torch.tensor([1.0, 10.0, 10.0], dtype=torch.float64)
    assert abs(linear_cka(stretched, yt) - linear_cka(xt, yt)) > 0.1


def test_mixer_layer_cka_matrix_uses_each_block_output():
    model = randomised(create_model("mixer_t2_8", num_blocks=3))
    images = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    result = cka_matrix(model, images, batch_size=16)  # several batches per layer
    assert result.layers_a == ["stem", "block 1", "block 2", "block 3"]
    matrix = np.array(result.cka)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-12)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    # independent: block 2's output computed by hand, compared with the stem's
    with torch.no_grad():
        stem = model.stem(images)
        block2 = model.blocks[1](model.blocks[0](stem))
    expected = feature_space_cka(
        stem.flatten(1).double().numpy(), block2.flatten(1).double().numpy()
    )
    assert matrix[0, 2] == pytest.approx(expected, abs=1e-9)
    names, grams = layer_grams(model, images)
    assert names[1] == "block 1"
    assert len(grams) == 4 and grams[0].shape == (40, 40)


def test_cka_between_two_checkpoints_and_bad_input():
    a = randomised(create_model("mixer_t2_8", num_blocks=2), seed=1)
    b = randomised(create_model("mixer_t2_8", num_blocks=3), seed=2)
    images = torch.randn(30, 1, 8, 8)
    result = cka_matrix(a, images, b)
    assert np.array(result.cka).shape == (3, 4) and result.layers_b[-1] == "block 3"
    same = cka_matrix(a, images, a)  # a model against itself: ones on the diagonal
    np.testing.assert_allclose(np.diag(np.array(same.cka)), 1.0, atol=1e-12)
    with pytest.raises(ConfigError, match="different inputs"):
        cka_matrix(a, images, create_model("mixer_t4_28"))
    with pytest.raises(ConfigError, match="at least 2 images"):
        cka_matrix(a, images[:1])
