"""A source's training and evaluation views are new data sets; the loaded split is left as it
was (float32 items, the public API). Before: the run switched the loaded data sets themselves
to uint8 (``use_uint8``, ``set_train_augment``), chosen by ``hasattr`` on the data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlpmixer.data.build import ArraySource, FolderSource, find_source
from mlpmixer.data.source import DataSource, LoadOptions
from mlpmixer.data.transforms import SampleAugment
from mlpmixer.errors import ConfigError

AUGMENT = SampleAugment(inception_crop=True, hflip=True)


def _folder(root):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_folder_views_are_new_objects(tmp_path):
    source = find_source(str(_folder(tmp_path / "data")))
    assert isinstance(source, FolderSource) and isinstance(source, DataSource)
    assert source.augments and not source.in_memory and not source.streams
    dataset, _ = source.load("train", LoadOptions(img_size=(8, 8), val_fraction=0.25))
    before = dataset[0][0]
    train = source.train_view(dataset, AUGMENT, seed=3, skip_log=None)
    test = source.eval_view(dataset, skip_log=None)
    assert train is not dataset and test is not dataset and train is not test
    assert before.dtype == torch.float32 and dataset[0][0].dtype == torch.float32
    assert torch.equal(dataset[0][0], before)  # the loaded split is unchanged
    assert train[(0, 0)][0].dtype == torch.uint8 and test[0][0].dtype == torch.uint8
    assert train[(0, 0)][0].shape == test[0][0].shape == (3, 8, 8)


def test_array_views_and_facts():
    source = find_source("DIGITS")
    assert isinstance(source, ArraySource) and source.name == "digits"
    assert source.native_size == (8, 8) and source.in_memory and source.augments
    dataset, info = source.load("test", LoadOptions())
    assert info.img_size == (8, 8) and info.in_memory
    view = source.train_view(dataset, AUGMENT, seed=0, skip_log=None)
    assert view is not dataset and dataset.augment is None and view.augment is AUGMENT
    assert source.eval_view(dataset, skip_log=None) is dataset  # arrays: float32, as loaded


def test_load_options_are_checked_once():
    assert LoadOptions(img_size=16).img_size == (16, 16)
    for bad in ({"in_chans": 2}, {"crop_pct": 0.0}, {"interpolation": "fancy"}):
        with pytest.raises(ConfigError):
            LoadOptions(**bad)
    options = LoadOptions(in_chans=1, crop_pct=0.875)
    assert options.shape((28, 28), 3) == ((28, 28), 1)
    assert (options.crop("train"), options.crop("test")) == (1.0, 0.875)


def test_named_sets_live_under_the_root_a_run_gives(tmp_path):
    """data.root reaches the named sets through `build_data` (None: `data_root()`)."""
    from mlpmixer.errors import DataError
    from mlpmixer.train import TrainConfig
    from mlpmixer.train.steps import build_data, plan_inputs

    config = TrainConfig.from_dict(
        {"data": {"dataset": "mnist", "root": str(tmp_path), "download": False}}
    )
    source = find_source("mnist")
    with pytest.raises(DataError, match=str(tmp_path / "mnist")):
        build_data(config, plan_inputs(config, source), source)
    assert LoadOptions().named_dir("cifar10").name == "cifar10"
