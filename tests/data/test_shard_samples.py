"""Shards decode as image folders do: the same uint8 training and evaluation samples."""

from __future__ import annotations

import pytest
import torch

from mlpmixer.data import build_dataset
from mlpmixer.data.folder import ImageFileDataset
from mlpmixer.data.pack import pack_shards
from mlpmixer.data.shards import EpochOrder, ShardStream
from mlpmixer.data.transforms import SampleAugment
from shard_helpers import make_tree

SIZE = 24
AUGMENT = SampleAugment(randaug_layers=2, randaug_magnitude=15)  # the paper's ImageNet recipe


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(shard data set, the same images as an image-folder data set in the shards' index order)
    of the training split; images large enough for the JPEG decoder's reduced scales."""
    root = tmp_path_factory.mktemp("pair")
    tree = make_tree(root / "src", per_class=4, size=(80, 60))
    pack_shards(str(tree), root / "shards", samples_per_shard=5)
    packed, _ = build_dataset(root / "shards", "train", img_size=SIZE)
    folder, _ = build_dataset(tree, "train", img_size=SIZE)
    by_bytes = {
        path.read_bytes(): (path, label)
        for path, label in zip(folder.files, folder.labels, strict=True)
    }
    ordered = [
        by_bytes[sample.image]
        for shard in range(len(packed.entries))
        for sample in packed.shard(shard)
    ]  # index order: shard by shard
    files, labels = [p for p, _ in ordered], [y for _, y in ordered]
    return packed, ImageFileDataset(files, labels, 3, (SIZE, SIZE))


def _all(dataset, epoch):
    return [dataset[(epoch, i)] for i in range(len(dataset))]


@pytest.mark.parametrize("epoch", [0, 3])
def test_training_samples_equal_the_folders_for_the_same_seed_epoch_and_index(pair, epoch):
    packed, folder = pair
    packed.set_train_augment(AUGMENT, seed=7)
    folder.set_train_augment(AUGMENT, seed=7)
    got, expected = _all(packed, epoch), _all(folder, epoch)
    assert len(got) == len(expected) == 12
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        assert x.dtype == torch.uint8 and x.shape == (3, SIZE, SIZE)
        assert y == ey and torch.equal(x, ex)
    # and the augmentation is really drawn: another epoch gives other pixels
    other = _all(packed, epoch + 1)
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(got, other, strict=True))


def test_evaluation_samples_equal_the_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    tree = make_tree(root / "src", per_class=4, size=(80, 60))
    pack_shards(str(tree), root / "shards", samples_per_shard=5)
    packed, _ = build_dataset(root / "shards", "test", img_size=SIZE, crop_pct=0.875)
    folder, _ = build_dataset(tree, "test", img_size=SIZE, crop_pct=0.875)
    packed.use_uint8()
    folder.use_uint8()

    def items(dataset):
        return sorted(
            (y, x.numpy().tobytes()) for x, y in (dataset[i] for i in range(len(dataset)))
        )

    got = items(packed)
    assert got == items(folder) and len(got) == 9
    assert packed[0][0].dtype == torch.uint8


def test_the_stream_draws_each_sample_from_its_index_and_epoch(pair):
    packed, _ = pair
    packed.set_train_augment(AUGMENT, seed=7)
    stream = ShardStream(packed, seed=7, shuffle=True, rank=0, world_size=1, micro_batch=4,
                         per_rank=len(packed))  # fmt: skip
    stream.set_epoch(2)
    order = EpochOrder(packed.counts, 7, 2, shuffle=True)
    expected = {}
    for micro in range(stream.num_micro):
        for position in stream.positions(micro):
            shard, record = order.locate(position)
            expected[position] = packed[(2, packed.firsts[shard] + record)]
    streamed = list(stream)
    wanted = [expected[p] for m in range(stream.num_micro) for p in stream.positions(m)]
    assert len(streamed) == len(wanted) == 12
    for (x, y), (ex, ey) in zip(streamed, wanted, strict=True):
        assert y == ey and torch.equal(x, ex)
