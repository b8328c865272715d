"""Training on image files with the paper's worker-side augmentation (inception crop, flip,
RandAugment, then mixup on the device): the weights do not depend on the worker count."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mlpmixer.train import TrainConfig, train

from .conftest import tiny_config


def _folder(root):
    rng = np.random.default_rng(0)
    for i in range(24):
        folder = root / "train" / f"c{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        array = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
        array[..., i % 3] //= 4  # a little class signal
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=90)
        (folder / f"{i}.jpg").write_bytes(buffer.getvalue())
    return root


@pytest.mark.slow
def test_image_folder_training_is_bitwise_the_same_with_0_or_2_workers(tmp_path):
    data = _folder(tmp_path / "images")
    weights = []
    for workers in (0, 2):
        config = tiny_config(
            data={"dataset": str(data), "num_workers": workers, "val_fraction": 0.25},
            augment={"random_resized_crop": True, "crop_scale": [0.05, 1.0],
                     "crop_ratio": [0.75, 1.33], "hflip": True, "randaugment_n": 2,
                     "randaugment_m": 15.0, "mixup_alpha": 0.5},
            train={"epochs": 2, "batch_size": 6},
            run={"out": str(tmp_path / f"run{workers}"), "progress": "none", "plot": False},
        )  # fmt: skip
        result = train(TrainConfig.from_dict(config))
        weights.append(result.model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("channels", [1, 3])
def test_in_memory_arrays_and_image_files_share_one_augmentation(tmp_path, channels):
    """Issue 26: an in-memory set's training item is the same uint8 sample as the same image
    stored as a (lossless) file in a folder: one crop sampler, resize, flip and RandAugment,
    seeded by (seed, epoch, index) in both."""
    from mlpmixer.data.arrays import ArrayDataset
    from mlpmixer.data.folder import ImageFileDataset
    from mlpmixer.data.transforms import SampleAugment

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, channels, 20, 24), dtype=np.uint8)
    files = []
    for i, image in enumerate(pixels):
        path = tmp_path / f"{i}.png"
        Image.fromarray(image[0] if channels == 1 else image.transpose(1, 2, 0)).save(path)
        files.append(path)
    augment = SampleAugment(area=(0.3, 1.0), randaug_layers=2, randaug_magnitude=5.0)
    arrays = ArrayDataset(torch.from_numpy(pixels), torch.zeros(6), channels, (16, 16))
    folder = ImageFileDataset(files, [0] * 6, channels, (16, 16))
    for data in (arrays, folder):
        data.set_train_augment(augment, seed=3)
    for epoch, index in [(0, 0), (1, 0), (2, 5), (7, 3)]:
        from_array, from_file = arrays[(epoch, index)][0], folder[(epoch, index)][0]
        assert from_array.dtype == torch.uint8 and from_array.shape == (channels, 16, 16)
        assert torch.equal(from_array, from_file), (epoch, index)
    assert not torch.equal(arrays[(0, 0)][0], arrays[(1, 0)][0])  # epochs draw anew


def test_eval_resize_area_evaluates_and_records_big_visions_resize(tmp_path):
    """``data.eval_resize: area`` (imagenet1k_b16): training resizes bilinearly, the held-out
    images go through big_vision's resize_small|central_crop, and the model records ``area``
    so that `evaluate` and `predict` repeat it."""
    from mlpmixer.data.transforms import eval_sample

    data = _folder(tmp_path / "images")
    config = tiny_config(
        data={"dataset": str(data), "num_workers": 0, "val_fraction": 0.25,
              "eval_resize": "area", "eval_crop_pct": 0.875},
        augment={"random_resized_crop": True, "hflip": True},
        train={"epochs": 1, "batch_size": 6},
        run={"out": str(tmp_path / "run"), "progress": "none", "plot": False},
    )  # fmt: skip
    result = train(TrainConfig.from_dict(config))
    assert result.model.config.interpolation == "area"
    assert result.model.config.crop_pct == 0.875
    from mlpmixer.data.build import build_dataset

    test_set, _ = build_dataset(str(data), "test", img_size=result.model.config.img_size,
                                crop_pct=0.875, interpolation="area", val_fraction=0.25)  # fmt: skip
    test_set.use_uint8()
    image = test_set[0][0]
    path = test_set.files[0]  # type: ignore[attr-defined]
    size = tuple(result.model.config.img_size)
    assert torch.equal(image, eval_sample(path, size, 0.875, 3, "area"))


@pytest.mark.parametrize("recipe", ["finetune_cifar10_224.yaml", "finetune_cifar10_448.yaml"])
def test_finetune_recipes_crop_cifar_for_real(recipe):
    """'Resize to 256, random crop 224' as a 0.766 area crop: with the one (TF's) crop sampler
    the range must hold a whole-pixel crop of a 32x32 image (28x28), else every attempt fails
    and the sampler returns the whole image: no crop at all."""
    from pathlib import Path

    from mlpmixer.data.transforms import sample_inception_crop
    from mlpmixer.train.augment import sample_augment
    from mlpmixer.train.config import load_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    augment = sample_augment(load_config(configs / recipe).augment)
    rng = np.random.default_rng(0)
    boxes = [sample_inception_crop(32, 32, rng, augment.area, augment.ratio) for _ in range(64)]
    assert {(h, w) for _, _, h, w in boxes} == {(28, 28)}
    assert len({(top, left) for top, left, _, _ in boxes}) > 8
