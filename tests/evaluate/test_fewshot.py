"""Few-shot linear probes: the closed form, separable data, λ selection, frozen features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from mixer_testing import randomised
from mlpmixer import DataError, create_model
from mlpmixer.evaluate.features import extract_features, tensor_batches
from mlpmixer.evaluate.fewshot import (
    fewshot_evaluate,
    one_vs_all_targets,
    ridge_accuracy,
    ridge_fit,
    sample_split,
)

pytestmark = pytest.mark.usefixtures("one_thread_per_test")


@pytest.mark.parametrize(("n", "d"), [(12, 30), (40, 5)])  # dual and primal branches
def test_ridge_fit_matches_scikit_learn(n, d):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, d)) + 2.0
    labels = torch.from_numpy(rng.integers(0, 4, n))
    targets = one_vs_all_targets(labels, 4)
    assert set(targets.unique().tolist()) == {-1.0, 1.0} and (targets == 1).sum(1).eq(1).all()
    weights, bias = ridge_fit(torch.from_numpy(x), targets, l2=0.7)
    reference = Ridge(alpha=0.7, fit_intercept=True, solver="cholesky").fit(x, targets.numpy())
    np.testing.assert_allclose(weights.numpy(), reference.coef_.T, atol=1e-9)
    np.testing.assert_allclose(bias.numpy(), reference.intercept_, atol=1e-9)


def _separable(num_classes=10, per_class=40, dim=64, seed=0):
    rng = np.random.default_rng(seed)
    centres = 5.0 * rng.standard_normal((num_classes, dim))
    labels = np.repeat(np.arange(num_classes), per_class)
    features = centres[labels] + 0.5 * rng.standard_normal((len(labels), dim))
    return torch.from_numpy(features).float(), torch.from_numpy(labels)


def test_separable_features_reach_100_percent_from_one_shot():
    x, y = _separable()
    x_test, y_test = _separable(seed=0, per_class=20)  # same centres, new noise
    result = fewshot_evaluate(x, y, x_test, y_test, shots=(1, 5), seeds=(0, 1, 2))
    assert result.accuracy(1) == 1.0 and result.accuracy(5) == 1.0
    assert all(len(r.accuracies) == 3 for r in result.results)
    assert result.num_classes == 10 and result.feature_dim == 64


def test_fewshot_accuracy_is_an_average_over_seeds_and_grows_with_shots():
    x, y = _separable(per_class=60, dim=16, seed=1)
    x = x + 6.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))  # overlap
    x_pool, y_pool, x_test, y_test = x[::2], y[::2], x[1::2], y[1::2]
    result = fewshot_evaluate(x_pool, y_pool, x_test, y_test, shots=(1, 25), seeds=range(4))
    one, many = result.results
    assert one.mean_accuracy == pytest.approx(np.mean(one.accuracies))
    assert 0.1 < one.mean_accuracy < many.mean_accuracy < 1.0
    # the chosen λ of seed 0 reproduces its accuracy when refit independently
    rng = np.random.default_rng([0, 25])
    train, _ = sample_split(y_pool, 25, 10, 10, rng)
    scale = (x_pool.double() - x_pool.double().mean(0)).pow(2).sum(1).mean().sqrt()
    refit = ridge_accuracy(
        x_pool[train].double() / scale, y_pool[train], x_test.double() / scale, y_test, 10,
        many.l2[0],
    )  # fmt: skip
    assert refit == pytest.approx(many.accuracies[0])


def test_too_few_images_per_class_is_a_clear_error():
    x, y = _separable(num_classes=3, per_class=4)
    with pytest.raises(DataError, match="class 0 has 4 training images"):
        fewshot_evaluate(x, y, x, y, shots=(5,))


def test_features_are_the_frozen_pre_logits():
    model = randomised(create_model("mixer_t2_8", num_blocks=2)).train()
    images = torch.randn(10, 1, 8, 8)
    labels = torch.arange(10)
    features, got_labels = extract_features(model, tensor_batches(images, labels, 4))
    assert not model.training and features.shape == (10, 128)
    torch.testing.assert_close(got_labels, labels)
    with torch.no_grad():
        logits = model(images)
    torch.testing.assert_close(model.head(features), logits, atol=1e-5, rtol=1e-5)
