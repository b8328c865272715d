"""Every PIL image mode becomes the right float tensor (values checked by hand, not by PIL)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlpmixer.data import load_image, pil_to_tensor, resize_image
from mlpmixer.errors import DataError

RNG = np.random.default_rng(0)


def _rgb(h=5, w=4):
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_and_gray_scale_to_unit_range():
    array = _rgb()
    out = pil_to_tensor(Image.fromarray(array), in_chans=3)
    assert out.dtype == torch.float32 and out.shape == (3, 5, 4)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), array / 255.0, atol=1e-7)
    gray = RNG.integers(0, 256, size=(5, 4), dtype=np.uint8)
    out = pil_to_tensor(Image.fromarray(gray), in_chans=None)
    assert out.shape == (1, 5, 4)
    np.testing.assert_allclose(out[0].numpy(), gray / 255.0, atol=1e-7)


def test_channel_conversion_uses_luma_weights_and_repeats_gray():
    array = _rgb()
    gray = pil_to_tensor(Image.fromarray(array), in_chans=1)
    expected = (array.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
    np.testing.assert_allclose(gray[0].numpy(), expected, atol=1e-6)
    single = Image.fromarray(array[..., 0])
    rgb = pil_to_tensor(single, in_chans=3)
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])


def test_bilevel_and_palette():
    bits = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).convert("1")
    assert pil_to_tensor(bits, None)[0].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette_image.putdata([0, 1])
    out = pil_to_tensor(palette_image, 3)
    np.testing.assert_allclose(out[:, 0, 0].numpy(), np.array([10, 20, 30]) / 255, atol=1e-7)
    np.testing.assert_allclose(out[:, 0, 1].numpy(), np.array([200, 100, 50]) / 255, atol=1e-7)


def test_alpha_is_composited_over_white():
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0], [0, 255, 0, 128]]], dtype=np.uint8)
    out = pil_to_tensor(Image.fromarray(rgba), 3)[:, 0].T.numpy()  # (3 pixels, rgb)
    alpha = 128 / 255
    expected = [[1, 0, 0], [1, 1, 1], [1 - alpha, 1.0, 1 - alpha]]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    la = np.array([[[100, 0], [100, 255]]], dtype=np.uint8)
    out = pil_to_tensor(Image.fromarray(la, "LA"), None)
    np.testing.assert_allclose(out[0, 0].numpy(), [1.0, 100 / 255], atol=1e-6)


def test_palette_with_transparent_index():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    image.putdata([0, 1])
    image.info["transparency"] = 1
    out = pil_to_tensor(image, 1)
    np.testing.assert_allclose(out[0, 0].numpy(), [0.0, 1.0], atol=1e-6)  # black, then white


def test_sixteen_bit_keeps_precision(tmp_path):
    values = np.array([[0, 1, 257, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    out = pil_to_tensor(image, None)
    np.testing.assert_allclose(out[0, 0].numpy(), values[0] / 65535.0, rtol=1e-6)
    assert out[0, 0, 1] > 0  # 1/65535 survives; an 8-bit conversion would give 0
    path = tmp_path / "deep.png"  # 16-bit PNG: PIL opens it as I;16 or I depending on version
    image.save(path)
    np.testing.assert_allclose(load_image(path, None)[0, 0].numpy(), values[0] / 65535.0, rtol=1e-6)


def test_int32_float_and_cmyk_modes():
    ints = Image.fromarray(np.array([[0, 32768, 70000]], dtype=np.int32))
    np.testing.assert_allclose(
        pil_to_tensor(ints, None)[0, 0].numpy(), [0, 32768 / 65535, 1.0], rtol=1e-6
    )
    floats = Image.fromarray(np.array([[-0.5, 0.25, 2.0]], dtype=np.float32))
    np.testing.assert_allclose(pil_to_tensor(floats, None)[0, 0].numpy(), [0.0, 0.25, 1.0])
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # no cyan, full magenta+yellow: red
    np.testing.assert_allclose(pil_to_tensor(cmyk, 3)[:, 0, 0].numpy(), [1.0, 0.0, 0.0], atol=1e-6)


def test_unreadable_file_is_a_data_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        load_image(path)


def test_resize_centre_crops_after_scaling_the_short_side():
    image = torch.arange(4 * 8, dtype=torch.float32).reshape(1, 4, 8) / 31
    out = resize_image(image, (4, 4), crop_pct=1.0)
    assert torch.equal(out, image[:, :, 2:6])  # no scaling needed: a pure centre crop
    out = resize_image(torch.rand(3, 10, 20), (8, 8), crop_pct=0.8)
    assert out.shape == (3, 8, 8) and out.min() >= 0.0 and out.max() <= 1.0
