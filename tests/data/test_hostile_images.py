"""Hostile image files on every decode path: a 631-byte JPEG whose header claims 12000 x 12000
(or, for the decoders' limit itself, PIL's limit lowered under a real image) is refused
before any pixel buffer is allocated; FIFOs and links to /dev/zero are refused or listed by
name, never read; ``data pack`` leaves such files out with a message and writes only into a
new, empty or interrupted-pack folder.

Before: ``predict`` on a 65000 x 65000 header peaked at 12.4 GB (simplejpeg decoded it
before any check); ``pack`` packed a bomb without a word; ``--skip-bad-images`` dropped FIFOs
and /dev/zero links without listing them.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.data import build_dataset, load_image
from mlpmixer.data.pack import pack_shards
from mlpmixer.data.transforms import eval_sample
from mlpmixer.errors import ConfigError, DataError
from mlpmixer.evaluate.predict import predict_files

BOMB_SIDE = 12_000  # 144 Mpx > PIL's 89 Mpx limit; 432 MB if it were ever decoded


def _jpeg(side: int = 8, claimed: int | None = None) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    if claimed is not None:  # the SOF0 header's height and width
        at = data.index(b"\xff\xc0")
        data[at + 5 : at + 9] = struct.pack(">HH", claimed, claimed)
    return bytes(data)


@pytest.fixture
def bomb(tmp_path):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(_jpeg(claimed=BOMB_SIDE))
    return path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_predict_refuses_a_bomb_before_allocating(bomb):
    model = create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                         channels_mlp_dim=8, num_classes=2)  # fmt: skip
    before = _peak_mb()
    report = predict_files(model, [str(bomb)])
    assert _peak_mb() - before < 200  # not the 432 MB of its pixels
    assert not report.predictions and "decompression-bomb limit" in report.failures[0]["error"]


def test_every_decoder_checks_the_header_against_the_limit(tmp_path, monkeypatch):
    """A real 64 x 64 JPEG under a limit of 1000 pixels: refused by the fast JPEG path too."""
    path = tmp_path / "real.jpg"
    path.write_bytes(_jpeg(side=64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for decode in (lambda: eval_sample(path, (8, 8)), lambda: load_image(path)):
        with pytest.raises(DataError, match="decompression-bomb limit of 1000"):
            decode()


def _tree(root, extra=None):
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            (root / c / f"{i}.jpg").write_bytes(_jpeg())
    if extra:
        extra(root / "a")
    return root


def _specials(folder):
    os.mkfifo(folder / "pipe.jpg")
    (folder / "zero.png").symlink_to("/dev/zero")


def test_pack_leaves_out_bombs_and_special_files_with_a_message(tmp_path, bomb):
    def extra(folder):
        _specials(folder)
        (folder / "bomb.jpg").write_bytes(bomb.read_bytes())

    tree = _tree(tmp_path / "src", extra)
    said = []
    index = pack_shards(str(tree), tmp_path / "out", samples_per_shard=4, progress=said.append)
    assert sum(e["count"] for split in index["splits"].values() for e in split) == 12
    listed = (tmp_path / "out" / "skipped_images.txt").read_text()
    assert "bomb.jpg: it has more pixels than PIL's decompression-bomb limit" in listed
    assert "pipe.jpg: it is a FIFO (named pipe), not a regular file" in listed
    assert "zero.png: it is a character device, not a regular file" in listed
    assert any("left out 3 unusable images" in line for line in said)


def test_pack_writes_only_into_a_new_empty_or_interrupted_pack_folder(tmp_path):
    tree = _tree(tmp_path / "src")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(
        ConfigError, match=r"mine is not empty \(notes\.txt\) and holds no mlpmixer shard set"
    ):
        pack_shards(str(tree), mine)
    assert sorted(os.listdir(mine)) == ["notes.txt"]
    result = CliRunner().invoke(cli, ["data", "pack", str(tree), str(mine)])
    assert result.exit_code == 2 and "holds no mlpmixer shard set" in result.output
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "train-000000.tar").write_bytes(b"partial")
    pack_shards(str(tree), interrupted, samples_per_shard=4)  # ours: written over
    assert json.loads((interrupted / "index.json").read_text())["format"] == "mlpmixer-shards"


def _train(folder, out, *flags):
    return CliRunner().invoke(cli, ["train", "--dataset", str(folder), "--steps", "1",
                                    "--model", "mixer_t2_8", "--img-size", "8", "--batch-size", "4",
                                    "--set", "run.progress=none", "--set", "run.plot=false",
                                    "--set", "data.num_workers=0", "--out", str(out), *flags])  # fmt: skip


def test_fifos_and_dev_zero_links_are_refused_or_listed(tmp_path):
    tree = _tree(tmp_path / "src", _specials)
    refused = _train(tree, tmp_path / "run1")
    assert refused.exit_code == 2 and "pipe.jpg is a FIFO (named pipe)" in refused.output
    assert "Traceback" not in refused.output
    skipped = _train(tree, tmp_path / "run2", "--skip-bad-images")
    assert skipped.exit_code == 0, skipped.output
    listed = (tmp_path / "run2" / "skipped_images.txt").read_text()
    assert "pipe.jpg: it is a FIFO (named pipe), not a regular file" in listed
    assert "zero.png: it is a character device, not a regular file" in listed


def test_a_bomb_in_a_folder_is_refused_or_listed_by_the_loaders(tmp_path, bomb):
    tree = _tree(tmp_path / "src", lambda f: (f / "bomb.jpg").write_bytes(bomb.read_bytes()))
    with pytest.raises(DataError, match="bomb.jpg: it has more pixels than PIL's decompression"):
        build_dataset(tree, "train", img_size=8)
    listed = []
    for split in ("train", "test"):  # the bomb is in one of them (a 10% held-out split)
        dataset, info = build_dataset(tree, split, img_size=8, skip_bad_images=True)
        assert all(path.name != "bomb.jpg" for path in dataset.files)
        listed += info.skipped
    assert len(listed) == 1 and "bomb.jpg: it has more pixels than" in listed[0]


def test_a_hugging_face_image_over_the_limit_is_refused_before_decoding(monkeypatch):
    from mlpmixer.data.hf import HFImageDataset

    class Lazy:  # what datasets hands over: an opened, not yet decoded, image
        width = height = BOMB_SIDE

    dataset = HFImageDataset.__new__(HFImageDataset)
    dataset.img_size, dataset.name = (8, 8), "hf:x"
    with pytest.raises(DataError, match=r"cannot read image hf:x sample 3: 12000x12000"):
        dataset._pixels(Lazy(), 0, 3)
