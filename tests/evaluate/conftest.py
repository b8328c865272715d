"""A small Mixer trained for a few seconds on scikit-learn's digits, shared by the eval tests."""

from __future__ import annotations

import contextlib

import pytest
import torch

from mlpmixer import create_model
from mlpmixer.data import build_dataset

TINY = {"hidden_dim": 32, "num_blocks": 2, "tokens_mlp_dim": 16, "channels_mlp_dim": 64}


@contextlib.contextmanager
def one_thread():
    """Tiny ops on a shared 2-core machine run several times faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_tensors(split: str):
    """All images (N, 1, 8, 8) in [0, 1], labels (N,) and the info of a digits split."""
    dataset, info = build_dataset("digits", split)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor([dataset[i][1] for i in range(len(dataset))])
    return images, labels, info


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory):
    """(path of a native checkpoint, model): ~90% top-1 on the digits test split."""
    images, labels, info = split_tensors("train")
    torch.manual_seed(0)
    model = create_model("mixer_t2_8", class_names=info.class_names, **TINY)
    normalised = (images - 0.5) / 0.5  # the config's mean and std
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with one_thread():
        for _ in range(4):
            for batch in torch.randperm(len(images)).split(64):
                loss = torch.nn.functional.cross_entropy(model(normalised[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    path = tmp_path_factory.mktemp("ckpt") / "digits-mixer"
    model.eval().save_pretrained(path)
    return path, model


@pytest.fixture(scope="session")
def digits_test():
    """(images, labels, info) of the digits test split."""
    return split_tensors("test")


@pytest.fixture
def single_thread():
    """The `one_thread` context manager, for tests that run a model."""
    return one_thread


@pytest.fixture
def one_thread_per_test():
    """Used by this group's eval/predict/fewshot test modules (not autouse: the benchmark
    tests in this folder choose their own thread counts)."""
    with one_thread():
        yield
