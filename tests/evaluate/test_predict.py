"""`predict_files`: every image mode, resizing per config, failures reported by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlpmixer import ConfigError
from mlpmixer.evaluate.predict import collect_images, predict_files, prepare_image

pytestmark = pytest.mark.usefixtures("one_thread_per_test")


def _digit_array(digits_test, index: int) -> np.ndarray:
    images, _, _ = digits_test
    return (images[index, 0].numpy() * 255).round().astype(np.uint8)  # (8, 8)


@pytest.fixture
def image_dir(tmp_path, digits_test):
    gray = _digit_array(digits_test, 0)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb.webp", lossless=True)
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb.jpg", quality=95)
    rgba = np.dstack([np.stack([gray] * 3, -1), np.full((8, 8), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    sixteen = gray.astype(np.uint16) * 257  # the same picture at 16 bits
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")
    with Image.open(tmp_path / "sixteen.png") as check:
        assert check.mode in ("I;16", "I")  # really stored with 16 bits
    big = np.kron(gray, np.ones((4, 4), np.uint8))  # 32x32: resized to the model's 8x8
    Image.fromarray(big).save(tmp_path / "big.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    return tmp_path


def test_every_mode_is_predicted_and_the_corrupt_file_is_named(digits_checkpoint, image_dir):
    _, model = digits_checkpoint
    report = predict_files(model, [image_dir, image_dir / "missing.png"], top_k=3, batch_size=4)
    predicted = {p.path.rsplit("/", 1)[-1]: p for p in report.predictions}
    assert sorted(predicted) == [
        "big.png",
        "gray.png",
        "rgb.jpg",
        "rgb.webp",
        "rgba.png",
        "sixteen.png",
    ]
    failed = {f["path"].rsplit("/", 1)[-1]: f["error"] for f in report.failures}
    assert sorted(failed) == ["corrupt.png", "missing.png"] and not report.ok
    assert "corrupt.png" in failed["corrupt.png"]
    # lossless variants of one picture give one answer; probabilities are sorted and sum <= 1
    reference = predicted["gray.png"].top
    for name in ("rgb.webp", "rgba.png", "sixteen.png"):
        assert [t["index"] for t in predicted[name].top] == [t["index"] for t in reference]
        for a, b in zip(predicted[name].top, reference, strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    probs = [t["probability"] for t in reference]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert reference[0]["class"] == model.config.class_names[reference[0]["index"]]


def test_probabilities_equal_the_model_on_the_normalised_pixels(
    digits_checkpoint, digits_test, image_dir
):
    _, model = digits_checkpoint
    report = predict_files(model, [image_dir / "gray.png"], top_k=10)
    x = torch.from_numpy(_digit_array(digits_test, 0)).float()[None, None] / 255
    with torch.no_grad():
        expected = model((x - 0.5) / 0.5).softmax(1)[0]
    got = {t["index"]: t["probability"] for t in report.predictions[0].top}
    assert len(got) == 10
    for index, probability in got.items():
        assert probability == pytest.approx(expected[index].item(), abs=1e-6)
    assert report.ok


def test_images_are_resized_and_cropped_per_config(digits_checkpoint, image_dir, digits_test):
    _, model = digits_checkpoint
    tensor = prepare_image(image_dir / "big.png", model.config)
    assert tensor.shape == (1, 8, 8)
    original = torch.from_numpy(_digit_array(digits_test, 0)).float() / 255
    assert (tensor[0] - original).abs().mean() < 0.05  # 4x nearest upscale, then area-like down
    wide = Image.new("L", (40, 16), 0)  # 2.5:1: shorter side to 8, then a centre crop
    wide.paste(255, (16, 0, 24, 16))  # a bright bar in the middle third
    wide.save(image_dir / "wide.png")
    cropped = prepare_image(image_dir / "wide.png", model.config.replace(crop_pct=0.5))
    assert cropped.shape == (1, 8, 8)
    # crop_pct 0.5: shorter side -> 16 (no resize), centre 8x8 crop is columns 16..24 = the bar
    assert cropped.min() > 0.99


def test_transparent_pixels_become_the_white_background(digits_checkpoint, tmp_path):
    _, model = digits_checkpoint
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, 3] = 255  # top half opaque black, bottom half fully transparent
    Image.fromarray(rgba).save(tmp_path / "half.png")
    tensor = prepare_image(tmp_path / "half.png", model.config)
    assert tensor[0, :4].max() == 0.0 and tensor[0, 4:].min() == 1.0


def test_collect_and_bad_arguments(digits_checkpoint, image_dir, tmp_path_factory):
    files, failures = collect_images([image_dir])
    assert len(files) == 7 and not failures  # the corrupt .png is collected, the .txt is not
    empty = tmp_path_factory.mktemp("empty")
    _, failures = collect_images([empty])
    assert failures == [{"path": str(empty), "error": "directory without image files"}]
    _, model = digits_checkpoint
    with pytest.raises(ConfigError, match="top_k"):
        predict_files(model, [image_dir], top_k=0)


@pytest.mark.parametrize(
    ("interpolation", "crop_pct", "in_chans"),
    [("bicubic", 0.875, 3), ("bilinear", 0.9, 3), ("bilinear", 1.0, 1)],
)
def test_predict_feeds_the_model_the_pixels_eval_feeds_it(
    tmp_path, interpolation, crop_pct, in_chans
):
    """The same file through predict and through eval's data set: the same input tensor."""
    from mlpmixer import create_model
    from mlpmixer.evaluate.eval import load_eval_split

    rng = np.random.default_rng(3)
    for name, size in (("a", (97, 61)), ("b", (50, 83))):
        folder = tmp_path / "data" / "test" / name
        folder.mkdir(parents=True)
        smooth = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(smooth).resize(size, Image.Resampling.BICUBIC)  # photo-like
        image.save(folder / "x.jpg", quality=90)
        image.save(folder / "y.png")
    (tmp_path / "data" / "train").symlink_to(tmp_path / "data" / "test")
    model = create_model("mixer_t2_8", img_size=24, in_chans=in_chans, num_classes=2,
                         crop_pct=crop_pct, interpolation=interpolation)  # fmt: skip
    data, _ = load_eval_split(model, tmp_path / "data")
    data.use_uint8()  # as evaluate_checkpoint
    assert len(data) == 4
    for i, path in enumerate(data.files):
        eval_input = data[i][0]
        assert eval_input.dtype == torch.uint8 and eval_input.shape == (in_chans, 24, 24)
        assert torch.equal(prepare_image(path, model.config), eval_input.float() / 255.0)
