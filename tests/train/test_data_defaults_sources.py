"""The same images get the same defaults from every source (issue 26 item 4): a class folder,
its shards (local, over HTTP, an index without ``image_sides``) and a Hugging Face set.

Before: the 144 images as a class folder trained mixer_s4_32 at 32 px, batch 32; packed into
shards, the generic mixer_s16_224 at 224 px, batch 128.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlpmixer.cli.train import flag_overrides
from mlpmixer.data.pack import pack_shards
from mlpmixer.models.config import to_pair
from mlpmixer.train.presets import resolve_config
from shard_helpers import serve

SIDE, CLASSES, PER_CLASS = 48, 3, 48  # 144 images, 129 for training after the 10% split


def _images(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (SIDE, SIDE + 8, 3), dtype=np.uint8))
            for _ in range(count)]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "folder"
    images = _images(CLASSES * PER_CLASS)
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(PER_CLASS):
            images[c * PER_CLASS + i].save(root / f"class{c}" / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def shards(folder) -> Path:
    out = folder.parent / "shards"
    pack_shards(str(folder), out, samples_per_shard=16)
    return out


def _sized(dataset: str) -> tuple:
    config = resolve_config(dataset=dataset)
    return (config.model.name, to_pair(config.model.img_size, "s"), config.train.batch_size,
            config.train.epochs, config.model.overrides)  # fmt: skip


def test_pack_records_what_the_sizing_needs(shards):
    index = json.loads((shards / "index.json").read_text())
    assert index["image_sides"]["train"] == {"min": SIDE, "median": SIDE, "max": SIDE}
    assert sum(e["count"] for e in index["splits"]["train"]) == 129


def test_shards_get_the_defaults_of_their_class_folder(folder, shards, tmp_path, caplog):
    want = _sized(str(folder))
    assert want[:3] == ("mixer_s4_32", (32, 32), 32)
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        assert _sized(str(shards)) == want
    assert "defaults from the data (129 training images, 3 classes, images ~48 px)" in caplog.text
    with serve(shards) as url:
        assert _sized(url) == want
    bare = tmp_path / "bare"  # an index written before image_sides: the first shard's images
    shutil.copytree(shards, bare)
    index = json.loads((bare / "index.json").read_text())
    del index["image_sides"]
    (bare / "index.json").write_text(json.dumps(index))
    assert _sized(str(bare)) == want
    flags = flag_overrides(batch_size=8, epochs=2)
    chosen = resolve_config(dataset=str(shards), model="mixer_t2_8", overrides=flags)
    assert (chosen.train.batch_size, chosen.train.epochs, chosen.model.name) == (8, 2, "mixer_t2_8")


class _ClassLabel:
    def __init__(self, names):
        self.names = names


class _ImageFeature:
    pass


class _Table:
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.features = {"img": _ImageFeature(), "label": _ClassLabel(["a", "b", "c"])}

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, key):
        return list(self.labels) if key == "label" else {"img": self.images[key],
                                                          "label": self.labels[key]}  # fmt: skip


def test_a_hugging_face_set_gets_the_same_defaults(folder, monkeypatch):
    images = _images(129)
    splits = {"train": _Table(images, [i % 3 for i in range(129)]),
              "validation": _Table(images[:14], [i % 3 for i in range(14)])}  # fmt: skip
    module = types.SimpleNamespace(load_dataset=lambda *a, **k: dict(splits),
                                   ClassLabel=_ClassLabel, Image=_ImageFeature)  # fmt: skip
    monkeypatch.setitem(sys.modules, "datasets", module)
    assert _sized("hf:fake") == _sized(str(folder))
