"""Hugging Face data sets: explicit split choice, unlabelled splits refused, packing to shards
with ``streaming=True``. A stand-in ``datasets`` module (the few names mlpmixer uses) makes
these tests run without the optional package; one test repeats the packing with the real one."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest
from PIL import Image

from mlpmixer.data import build_dataset
from mlpmixer.data.hf import buffer_shuffled, check_labels, choose_split
from mlpmixer.data.pack import pack_shards
from mlpmixer.errors import DataError
from mlpmixer.train import TrainConfig

RNG = np.random.default_rng(0)


class ClassLabel:
    def __init__(self, names):
        self.names = names


class ImageFeature:
    def __init__(self, decode=True):
        self.decode = decode


class Table:
    """A split: rows of {"img": PIL image, "label": int}, as ``datasets`` gives them."""

    def __init__(self, images, labels, decode=True):
        self.images, self.labels, self.decode = images, labels, decode
        self.features = {"img": ImageFeature(decode), "label": ClassLabel(["a", "b", "c"])}

    def __len__(self):
        return len(self.labels)

    def _row(self, i):
        image = self.images[i]
        if not self.decode:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            image = {"bytes": buffer.getvalue(), "path": None}
        return {"img": image, "label": self.labels[i]}

    def __getitem__(self, key):
        return list(self.labels) if key == "label" else self._row(key)

    def __iter__(self):
        return (self._row(i) for i in range(len(self)))

    def cast_column(self, column, feature):
        return Table(self.images, self.labels, feature.decode)

    def shuffle(self, seed, buffer_size):
        order = np.random.default_rng(seed).permutation(len(self))
        return Table([self.images[i] for i in order], [self.labels[i] for i in order])


def _table(labels):
    images = [Image.fromarray(RNG.integers(0, 256, (9, 7, 3), dtype=np.uint8)) for _ in labels]
    return Table(images, labels)


SPLITS = {
    "train": _table([0, 1, 2] * 4),
    "validation": _table([2, 1, 0]),
    "test": _table([-1, -1, -1]),  # as ImageNet-1k's test split on the hub
}


@pytest.fixture
def fake_datasets(monkeypatch):
    """``datasets`` replaced by the stand-in; returns the options each load was called with."""
    calls = []

    def load_dataset(name, config=None, **options):
        calls.append(options)
        return dict(SPLITS)

    module = types.SimpleNamespace(load_dataset=load_dataset, ClassLabel=ClassLabel,
                                   Image=ImageFeature)  # fmt: skip
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_choose_split():
    assert choose_split("hf:x", ["train", "test", "validation"], "test", None) == "validation"
    assert choose_split("hf:x", ["train", "test"], "test", None) == "test"
    assert choose_split("hf:x", ["train", "test"], "test", "test") == "test"
    assert choose_split("hf:x", ["tr", "test"], "train", "tr") == "tr"
    with pytest.raises(DataError, match=r"no split 'train' \(has \['tr'\]\).*data\.train_split"):
        choose_split("hf:x", ["tr"], "train", None)
    with pytest.raises(DataError, match=r"no split 'dev'.*data\.val_split"):
        choose_split("hf:x", ["train"], "test", "dev")


def test_check_labels():
    check_labels([0, 3, 1], "hf:x", "train")
    with pytest.raises(DataError, match=r"split 'test' has no labels \(every label is -1\)"):
        check_labels([-1, -1], "hf:x", "test")
    with pytest.raises(
        DataError, match=r"split 'train': sample 2 has no label \(-1\), and 1 in all"
    ):
        check_labels([0, 1, -1], "hf:x", "train")


def test_buffer_shuffled_is_a_seeded_permutation_holding_at_most_its_buffer():
    read = []

    def source():
        for i in range(50):
            read.append(i)
            yield i

    stream = buffer_shuffled(source(), seed=3, size=8)
    first = next(stream)
    assert len(read) == 9  # the buffer was full: the ninth read let one out
    out = [first, *stream]
    assert sorted(out) == list(range(50)) and out != list(range(50))
    assert out == list(buffer_shuffled(range(50), seed=3, size=8))
    assert out != list(buffer_shuffled(range(50), seed=4, size=8))
    assert sorted(buffer_shuffled(range(5), seed=0, size=8)) == list(range(5))  # fewer than size


def test_held_out_split_is_validation_unless_chosen(fake_datasets):
    dataset, info = build_dataset("hf:fake", "test", img_size=8)
    assert len(dataset) == 3 and [dataset[i][1] for i in range(3)] == [2, 1, 0]
    assert info.class_names == ("a", "b", "c")
    with pytest.raises(DataError, match=r"split 'test' has no labels"):
        build_dataset("hf:fake", "test", img_size=8, source_split="test")
    train_set, _ = build_dataset("hf:fake", "train", img_size=8, source_split="validation")
    assert len(train_set) == 3


def test_split_config_fields():
    config = TrainConfig.from_dict({"data": {"dataset": "hf:x", "train_split": "train[:90%]",
                                             "val_split": "validation"}})  # fmt: skip
    assert (config.data.train_split, config.data.val_split) == ("train[:90%]", "validation")


def test_pack_streams_a_hugging_face_data_set(fake_datasets, tmp_path):
    index = pack_shards("hf:fake", tmp_path / "out", samples_per_shard=5)
    assert fake_datasets and all(call == {"streaming": True} for call in fake_datasets)
    assert [e["count"] for e in index["splits"]["train"]] == [5, 5, 2]
    assert [e["count"] for e in index["splits"]["test"]] == [3]  # the validation split
    packed, info = build_dataset(tmp_path / "out", "test", img_size=8)
    direct, _ = build_dataset("hf:fake", "test", img_size=8)
    pairs = sorted((y, x.numpy().tobytes()) for x, y in (packed[i] for i in range(3)))
    want = sorted((y, x.numpy().tobytes()) for x, y in (direct[i] for i in range(3)))
    assert pairs == want and info.class_names == ("a", "b", "c")
    with pytest.raises(DataError, match=r"hf:fake \[test #0\]: no label \(-1\) in the test split"):
        pack_shards("hf:fake", tmp_path / "bad", val_split="test")


def test_pack_with_the_real_datasets_package(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
    )
    images = [Image.fromarray(RNG.integers(0, 256, (9, 7, 3), dtype=np.uint8)) for _ in range(6)]
    table = datasets.Dataset.from_dict({"img": images, "label": [0, 1] * 3}, features=features)
    splits = {"train": table.to_iterable_dataset(), "test": table.to_iterable_dataset()}
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, **kw: splits)
    index = pack_shards("hf:real", tmp_path / "out", samples_per_shard=4)
    assert [e["count"] for e in index["splits"]["train"]] == [4, 2]
    packed, _ = build_dataset(tmp_path / "out", "test", img_size=8)
    assert sorted(packed[i][1] for i in range(6)) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("epoch", [0, 2])
def test_hf_samples_equal_an_image_folder_of_the_same_images(fake_datasets, tmp_path, epoch):
    """Worker-side uint8 training (seed, epoch, index) and eval samples, as image folders."""
    import torch

    from mlpmixer.data.folder import ImageFileDataset
    from mlpmixer.data.transforms import SampleAugment

    table = SPLITS["train"]
    files = []
    for i, image in enumerate(table.images):  # PNG: lossless, the same pixels as the table
        files.append(tmp_path / f"{i}.png")
        image.save(files[-1])
    augment = SampleAugment(randaug_layers=2, randaug_magnitude=15)
    for train in (True, False):
        hf_set, _ = build_dataset("hf:fake", "train", img_size=8)
        folder = ImageFileDataset(files, list(table.labels), 3, (8, 8))
        for dataset in (hf_set, folder):
            if train:
                dataset.set_train_augment(augment, seed=5)
            else:
                dataset.use_uint8()
        for i in range(len(files)):
            x, y = hf_set[(epoch, i)]
            ex, ey = folder[(epoch, i)]
            assert x.dtype == torch.uint8 and x.shape == (3, 8, 8)
            assert y == ey and torch.equal(x, ex)
