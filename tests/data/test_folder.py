"""Class-per-folder image directories: train/val layout, seeded split, mixed image modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlpmixer.data import build_dataset
from mlpmixer.errors import DataError

RNG = np.random.default_rng(0)
MODES = ("RGB", "L", "RGBA", "P", "I;16")


def _save(path, mode, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(RNG.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    if mode == "I;16":
        Image.fromarray(RNG.integers(0, 65536, size=(size[1], size[0]), dtype=np.uint16)).save(
            path.with_suffix(".png")
        )
        return
    image = rgb.convert("P") if mode == "P" else rgb.convert(mode)
    image.save(path.with_suffix(".png"))


def make_folder(root, classes=("cat", "dog", "emu"), per_class=5, split_dirs=True):
    for c in classes:
        for i in range(per_class):
            if split_dirs:
                _save(root / "train" / c / f"{i}", MODES[i % len(MODES)])
                if i < 2:
                    _save(root / "val" / c / f"{i}", MODES[(i + 1) % len(MODES)])
            else:
                _save(root / c / f"{i}", MODES[i % len(MODES)])
    return root


def test_train_val_layout(tmp_path):
    root = make_folder(tmp_path / "pets")
    train, info = build_dataset(root, "train", img_size=8)
    val, val_info = build_dataset(root, "val", img_size=8)
    assert info.class_names == ("cat", "dog", "emu") and info.num_classes == 3
    assert (len(train), len(val)) == (15, 6) and not info.in_memory
    x, y = val[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and y == 0
    assert x.min() >= 0.0 and x.max() <= 1.0 and val_info.mean == info.mean


def test_seeded_stratified_split_without_val_dir(tmp_path):
    root = make_folder(tmp_path / "flat", per_class=10, split_dirs=False)
    train, _ = build_dataset(root, "train", img_size=8, val_fraction=0.2, seed=3)
    test, _ = build_dataset(root, "test", img_size=8, val_fraction=0.2, seed=3)
    assert (len(train), len(test)) == (24, 6)
    assert sorted(test.labels) == [0, 0, 1, 1, 2, 2]
    assert not set(train.files) & set(test.files)
    again, _ = build_dataset(root, "test", img_size=8, val_fraction=0.2, seed=3)
    other, _ = build_dataset(root, "test", img_size=8, val_fraction=0.2, seed=4)
    assert again.files == test.files and other.files != test.files


def test_grayscale_request_and_loader_workers(tmp_path):
    root = make_folder(tmp_path / "g")
    dataset, info = build_dataset(root, "train", img_size=(6, 4), in_chans=1)
    assert info.in_chans == 1 and len(info.mean) == 1
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, num_workers=2)
    images, labels = next(iter(loader))
    assert images.shape == (5, 1, 6, 4) and labels.tolist() == [0] * 5


def test_folder_errors(tmp_path):
    root = make_folder(tmp_path / "bad")
    (root / "val" / "zebra").mkdir()
    _save(root / "val" / "zebra" / "z", "RGB")
    with pytest.raises(DataError, match="zebra"):
        build_dataset(root, "val")
    empty = tmp_path / "empty" / "cls"
    empty.mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        build_dataset(tmp_path / "empty")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="not a data set directory"):
        build_dataset(tmp_path / "nothing")
    broken = make_folder(tmp_path / "broken", per_class=1)
    (broken / "train" / "cat" / "0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"0\.png"):
        build_dataset(broken, "train", img_size=8)


def test_hugging_face_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    images = [
        Image.fromarray(RNG.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)) for _ in range(6)
    ]
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
    )
    table = datasets.Dataset.from_dict({"img": images, "label": [0, 1] * 3}, features=features)
    datasets.DatasetDict({"train": table, "test": table}).save_to_disk(tmp_path / "hfdata")

    def fake_load(name, config=None, **kwargs):
        return datasets.load_from_disk(str(tmp_path / name))

    import mlpmixer.data.hf as hf

    hf_load = datasets.load_dataset
    datasets.load_dataset = fake_load
    try:
        dataset, info = build_dataset("hf:hfdata", "test", img_size=8)
    finally:
        datasets.load_dataset = hf_load
    assert info.class_names == ("a", "b") and len(dataset) == 6 and hf.PREFIX == "hf:"
    x, y = dataset[1]
    assert x.shape == (3, 8, 8) and y == 1
