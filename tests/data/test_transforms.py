"""The uint8 worker path (issue 15, item 2): decode at reduced size, crop+resize in one
resample, uint8 batches, per-sample randomness from (seed, epoch, index)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import mlpmixer.data.transforms as transforms
from mlpmixer.data import build_dataset, normalize
from mlpmixer.data.folder import ImageFileDataset
from mlpmixer.data.images import load_image, resize_image
from mlpmixer.data.loading import (
    EpochKeyedBatches,
    default_workers,
    loader_options,
)
from mlpmixer.data.transforms import (
    SampleAugment,
    centre_crop_box,
    decode_region,
    eval_sample,
    sample_rng,
    train_sample,
)
from mlpmixer.errors import DataError
from mlpmixer.train.sampler import TrainBatchSampler


def _photo(height: int = 375, width: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([np.sin(x / 17), np.cos(y / 23), np.sin((x + y) / 31)], -1) * 90 + 120
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return _jpeg(_photo())


@pytest.fixture(params=[True, False], ids=["simplejpeg", "pil-draft"])
def backend(request, monkeypatch):
    if request.param and transforms.simplejpeg is None:
        pytest.skip("simplejpeg is not installed")
    monkeypatch.setattr(transforms, "USE_SIMPLEJPEG", request.param)
    return request.param


@pytest.mark.parametrize("crop_pct", [1.0, 0.875])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_eval_sample_equals_the_float_path_up_to_rounding(
    tmp_path, jpeg, backend, crop_pct, interpolation
):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg)
    new = eval_sample(path, (224, 224), crop_pct, interpolation=interpolation)
    old = resize_image(load_image(path), (224, 224), crop_pct, interpolation) * 255.0
    assert new.dtype == torch.uint8 and new.shape == (3, 224, 224)
    diff = (new.float() - old).abs()
    assert diff.max() <= 1.5 and diff.mean() < 0.4  # uint8 rounding of the same resample


def test_reduced_decode_stays_close_to_a_full_decode(jpeg, backend):
    """The DCT-scaled decode only changes how the crop is low-passed."""
    box = (100.0, 50.0, 400.0, 350.0)  # 300 x 300 -> 112: a 1/2-scale decode
    reduced = decode_region(jpeg, lambda h, w: box, (112, 112), reduce=True)
    full = decode_region(jpeg, lambda h, w: box, (112, 112), reduce=False)
    diff = np.abs(np.asarray(reduced, np.float32) - np.asarray(full, np.float32))
    assert diff.mean() < 4.0, diff.mean()
    shifted = decode_region(
        jpeg, lambda h, w: (110.0, 50.0, 410.0, 350.0), (112, 112), reduce=False
    )
    # the error is well below that of a 10-pixel misplacement of the crop
    assert (
        diff.mean()
        < 0.5 * np.abs(np.asarray(shifted, np.float32) - np.asarray(full, np.float32)).mean()
    )


def test_path_bytes_and_file_give_the_same_sample(tmp_path, jpeg):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg)
    aug = SampleAugment(randaug_layers=2, randaug_magnitude=15)
    samples = [
        train_sample(source, (64, 64), aug, sample_rng(3, 1, 7))
        for source in (path, str(path), jpeg, io.BytesIO(jpeg))
    ]
    assert all(torch.equal(samples[0], s) for s in samples[1:])
    with Image.open(path) as decoded:  # a decoded PIL image (Hugging Face rows): same crop
        from_pil = eval_sample(decoded, (64, 64))
    assert torch.equal(from_pil, eval_sample(jpeg, (64, 64)))
    other = train_sample(jpeg, (64, 64), aug, sample_rng(3, 2, 7))
    assert not torch.equal(samples[0], other)


def test_undecodable_bytes_are_a_data_error_naming_the_sample():
    with pytest.raises(DataError, match=r"cannot read image shard-0003.tar:img_17\.jpg"):
        eval_sample(b"\xff\xd8not a jpeg", (32, 32), name="shard-0003.tar:img_17.jpg")
    with pytest.raises(DataError, match="no such file"):
        eval_sample("/nonexistent/x.jpg", (32, 32))


def test_modes_other_than_rgb_become_rgb_like_the_float_path(tmp_path):
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    path = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(path)
    new = eval_sample(path, (40, 50)).float()
    old = resize_image(load_image(path), (40, 50)) * 255.0
    assert (new - old).abs().max() <= 0.51  # composited over white, then rounded
    gray = eval_sample(path, (40, 50), in_chans=1)
    assert gray.shape == (1, 40, 50)


def test_centre_crop_box_is_the_old_resize_then_crop():
    # 375 x 500, 224 at crop_pct 0.875: shorter side to 256, i.e. a 256 x 341 resize
    left, top, right, bottom = centre_crop_box(375, 500, (224, 224), 0.875)
    assert right - left == pytest.approx(224 * 500 / 341)
    assert bottom - top == pytest.approx(224 * 375 / 256)
    assert left == pytest.approx(58 * 500 / 341) and top == pytest.approx(16 * 375 / 256)


def _folder(root: Path, count: int = 12) -> Path:
    for i in range(count):
        folder = root / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(_jpeg(_photo(60 + i, 80, seed=i)))
    return root


def test_loader_batches_are_uint8_and_independent_of_the_worker_count(tmp_path):
    data, _ = build_dataset(_folder(tmp_path), "train", img_size=32)
    data.set_train_augment(SampleAugment(randaug_layers=2, randaug_magnitude=15), seed=5)
    sampler = TrainBatchSampler(len(data), 4, seed=5)

    def epoch_batches(workers: int, epoch: int, start: int = 0) -> list[torch.Tensor]:
        sampler.set_epoch(epoch, start)
        options = loader_options(workers, cuda=False)
        loader = DataLoader(data, batch_sampler=EpochKeyedBatches(sampler), **options)
        return [images for images, _ in loader]

    serial = epoch_batches(0, epoch=1)
    assert serial[0].dtype == torch.uint8 and serial[0].shape == (4, 3, 32, 32)
    parallel = epoch_batches(2, epoch=1)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    resumed = epoch_batches(0, epoch=1, start=1)  # a run resumed after the first step
    assert all(torch.equal(a, b) for a, b in zip(serial[1:], resumed, strict=True))
    assert not torch.equal(serial[0], epoch_batches(0, epoch=2)[0])  # new draws each epoch


def test_normalize_takes_uint8_batches():
    batch = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    want = normalize(batch.float() / 255.0, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    assert torch.allclose(normalize(batch, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4)), want)


def test_default_workers_follow_the_affinity_mask(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(12)), raising=False)
    assert default_workers(in_memory=False) == 11
    assert default_workers(in_memory=False, processes_per_node=4) == 2
    assert default_workers(in_memory=True) == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(512)), raising=False)
    assert default_workers(in_memory=False) == 32
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_workers(in_memory=False) == 1


def test_loader_options_pin_only_for_cuda_and_prefetch_with_workers():
    assert loader_options(0, cuda=False) == {"num_workers": 0, "pin_memory": False}
    options = loader_options(4, cuda=True)
    assert options["pin_memory"] and options["persistent_workers"]
    assert options["prefetch_factor"] == 4


def test_image_folder_keeps_the_float_api_until_asked(tmp_path):
    data, _ = build_dataset(_folder(tmp_path), "test", img_size=32)
    image, _ = data[0]
    assert image.dtype == torch.float32 and image.max() <= 1.0
    assert isinstance(data, ImageFileDataset)
    data.use_uint8()
    assert data[0][0].dtype == torch.uint8


def _tf_bilinear(array: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """tf.image.resize(bilinear, antialias=False): half-pixel centres, edge clamping; float."""

    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        floor = np.floor(pos)
        low = np.maximum(floor, 0).astype(int)
        high = np.minimum(np.ceil(pos), n_in - 1).astype(int)
        return low, high, (pos - floor)

    y0, y1, wy = axis(out_h, array.shape[0])
    x0, x1, wx = axis(out_w, array.shape[1])
    a = array.astype(np.float64)
    top = a[y0][:, x0] * (1 - wx[None, :, None]) + a[y0][:, x1] * wx[None, :, None]
    bottom = a[y1][:, x0] * (1 - wx[None, :, None]) + a[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy[:, None, None]) + bottom * wy[:, None, None]


@pytest.mark.parametrize(
    "box, size", [((30, 20, 330, 260), (112, 96)), ((100, 80, 150, 120), (224, 224))]
)
def test_training_resize_is_tfs_bilinear_without_antialiasing(box, size):
    """big_vision resizes the crop with tf.image.resize(..., antialias=False)."""
    array = _photo()
    got = transforms.crop_resize(array, tuple(map(float, box)), size, "bilinear")
    left, top, right, bottom = box
    want = _tf_bilinear(array[top:bottom, left:right], *size)
    diff = np.abs(got.permute(1, 2, 0).numpy().astype(np.float64) - want)
    assert got.dtype == torch.uint8
    assert diff.max() <= 1.0, diff.max()  # the uint8 kernel's rounding
