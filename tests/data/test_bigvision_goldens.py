"""Our preprocessing against golden outputs of big_vision's own ops under TensorFlow 2.21.

The goldens (tests/fixtures/bigvision/, made by benchmarks/bigvision_goldens.py from a checkout
of google-research/big_vision) are the reference: no re-reading of its code here. Issue 26:
every RandAugment op at every magnitude the recipes use is bit-identical; the evaluation
transform ``resize_small|central_crop`` (area resize) is bit-identical; the training decode
``decode_jpeg_and_inception_crop`` is bit-identical on every crop window (TF's partial JPEG
decode's edge columns recomputed, `mlpmixer.data.jpeg_crop`) with TF's resize, within one grey
level with torch's.
"""

from __future__ import annotations

import numpy as np
import pytest

from bigvision_goldens import goldens
from mlpmixer.data import jpeg_crop
from mlpmixer.data.jpeg_crop import edge_columns
from mlpmixer.data.randaugment import OPS, apply_op
from mlpmixer.data.tf_resize import resize_small_central_crop
from mlpmixer.data.transforms import (
    USE_SIMPLEJPEG,
    SampleAugment,
    _decode,
    crop_resize,
    eval_sample,
    train_sample,
)

MAGNITUDES = (0, 3, 5, 10, 15, 20)  # the recipes use 3, 5 and 15; the issue asks 0-20
IMAGES = ("photo", "checker", "gradient")
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")


class Draws:
    """The draws big_vision's goldens fixed: the sign of a geometric op, Cutout's centre."""

    def __init__(self, sign: str, centre: tuple[int, int]) -> None:
        self.sign, self.centre = sign, list(centre)

    def random(self) -> float:  # apply_op negates where this is below 1/2
        return 0.75 if self.sign == "pos" else 0.25

    def integers(self, low: int, high: int) -> int:
        value = int(self.centre.pop(0))
        assert low <= value < high
        return value


def test_the_goldens_cover_every_op_and_magnitude():
    keys = {tuple(k.split("|")[1:3]) for k in goldens("randaugment") if k.count("|") == 3}
    assert keys == {(op, f"M{m}") for op in OPS for m in MAGNITUDES}


@pytest.mark.parametrize("magnitude", MAGNITUDES)
@pytest.mark.parametrize("op", OPS)
def test_randaugment_op_is_bit_identical_to_big_vision(op, magnitude):
    data = goldens("randaugment")
    centres = dict(zip(IMAGES, data["cutout_centres"].tolist(), strict=True))
    for name in IMAGES:
        for sign in ("pos", "neg") if op in GEOMETRIC else ("-",):
            want = data[f"{name}|{op}|M{magnitude}|{sign}"]
            got = apply_op(op, data[f"input|{name}"], magnitude, Draws(sign, centres[name]))  # type: ignore[arg-type]
            assert got.dtype == np.uint8 and got.shape == want.shape
            differ = (got != want).any(-1)
            assert not differ.any(), (name, sign, int(differ.sum()), np.argwhere(differ)[:5])


@pytest.mark.parametrize("op", ["Rotate", "ShearX", "ShearY"])
@pytest.mark.parametrize("sign", ["pos", "neg"])
def test_warps_of_a_whole_224_image_are_bit_identical(op, sign):
    """The nearest-neighbour mapping over a full training image at the ImageNet recipe's M=15
    (float32 rotation matrix, rounding of every source point)."""
    data = goldens("randaugment")
    got = apply_op(op, data["input|big"], 15, Draws(sign, (0, 0)))  # type: ignore[arg-type]
    want = data[f"big|{op}|M15|{sign}"]
    assert np.array_equal(got, want), int((got != want).any(-1).sum())


# --- evaluation: resize_small(S)|central_crop(C), TF's area resize -------------------------------


def _eval_cases() -> list[str]:
    return [k for k in goldens("eval_resize") if k.count("|") == 2 and not k.startswith("input")]


@pytest.mark.parametrize("key", _eval_cases())
def test_area_resize_and_central_crop_are_bit_identical_to_big_vision(key):
    data = goldens("eval_resize")
    name, smaller, crop = key.split("|")
    got = resize_small_central_crop(data[f"input|{name}"], int(smaller[1:]), (int(crop[1:]),) * 2)
    assert np.array_equal(got, data[key]), int((got != data[key]).sum())


@pytest.mark.skipif(not USE_SIMPLEJPEG, reason="TF's DCT needs simplejpeg (PIL decodes exactly)")
def test_eval_sample_area_is_big_vision_eval_on_a_jpeg(tmp_path):
    """The whole evaluation transform (decode with TF's DCT, resize_small, central_crop): a
    JPEG decoded as TF does, then the area resize the goldens above pin down."""
    data = goldens("train_decode")
    jpeg = data["jpeg|checker"].tobytes()
    want = resize_small_central_crop(data["decoded|checker"], 64, (56, 56))
    got = eval_sample(jpeg, (56, 56), crop_pct=56 / 64, interpolation="area")
    assert np.array_equal(got.permute(1, 2, 0).numpy(), want)


# --- training decode: decode_jpeg_and_inception_crop with a fixed box --------------------------


def _decode_cases() -> list[tuple[str, str, int]]:
    """(golden file, jpeg, box index) of every fixed crop window."""
    cases = []
    for stem in ("train_decode", "train_crop"):
        data = goldens(stem)
        names = sorted(k.split("|")[1] for k in data if k.startswith("jpeg|"))
        cases += [(stem, name, k) for name in names for k in range(len(data[f"box|{name}"]))]
    return cases


@pytest.mark.skipif(not USE_SIMPLEJPEG, reason="TF's DCT needs simplejpeg (PIL decodes exactly)")
@pytest.mark.parametrize("name", ["checker", "gradient"])
def test_jpeg_decode_is_tfs(name):
    data = goldens("train_decode")
    array, _ = _decode(data[f"jpeg|{name}"].tobytes(), lambda h, w: (0, 0, w, h), (8, 8), False,
                       None, fast_dct=True)  # fmt: skip
    assert np.array_equal(array, data[f"decoded|{name}"])


def _case(stem: str, name: str, box: int) -> tuple[bytes, tuple[int, int, int, int], int]:
    """(JPEG bytes, (left, top, right, bottom), output size) of one golden crop window."""
    data = goldens(stem)
    top, left, h, w = (int(v) for v in data[f"box|{name}"][box])
    return (
        data[f"jpeg|{name}"].tobytes(),
        (left, top, left + w, top + h),
        40 if stem == "train_decode" else 32,
    )


@pytest.fixture(params=["libjpeg", "recomputed"])
def decoder(request, monkeypatch):
    """Both ways to TF's window: libjpeg-turbo's own crop decode (jpeg_crop.c, where it can be
    built), and a full decode with the window's edge columns recomputed (elsewhere)."""
    if request.param == "recomputed":
        monkeypatch.setattr(jpeg_crop, "_library", lambda: None)
    elif jpeg_crop._library() is None:
        pytest.skip("jpeg_crop.c cannot be built here (C compiler, libjpeg headers)")
    return request.param


def _window(jpeg: bytes, box: tuple[int, int, int, int], tf_crop: bool = True) -> np.ndarray:
    """The pixels of the window as ``train_decode: full`` decodes them (H, W, 3) uint8."""
    array, at = _decode(jpeg, lambda *_: box, (8, 8), False, None, fast_dct=True, tf_crop=tf_crop)
    left, top = int(at[0]), int(at[1])
    return array[top : top + box[3] - box[1], left : left + box[2] - box[0]]


def _full_decode_and_resize(stem: str, name: str, box: int, tf: bool):
    """(ours, big_vision's) for the ``train_decode: full`` crop of box ``box``."""
    jpeg, window, size = _case(stem, name, box)
    assert SampleAugment().decode == "full"  # the default: big_vision's decode_and_crop_jpeg
    array, at = _decode(jpeg, lambda *_: window, (size, size), False, None, fast_dct=True,
                        tf_crop=True)  # fmt: skip
    got = crop_resize(array, at, (size, size), "bilinear", tf=tf)
    return got.permute(1, 2, 0).numpy(), goldens(stem)[f"{name}|{box}|{size}"]


@pytest.mark.skipif(not USE_SIMPLEJPEG, reason="TF's DCT needs simplejpeg (PIL decodes exactly)")
@pytest.mark.parametrize("stem, name, box", _decode_cases())
def test_full_decode_with_tfs_resize_is_big_vision(decoder, stem, name, box):
    """``decode_and_crop_jpeg`` + bilinear resize (``train_resize: tf``): bit-identical on every
    box, the crop windows whose sides TF's partial decode upsamples as image sides included
    (4:2:0 and 4:2:2 JPEGs, `mlpmixer.data.jpeg_crop`)."""
    got, want = _full_decode_and_resize(stem, name, box, tf=True)
    differ = (got != want).any(-1)
    assert not differ.any(), (int(differ.sum()), np.argwhere(differ)[:5].tolist())


@pytest.mark.skipif(not USE_SIMPLEJPEG, reason="TF's DCT needs simplejpeg (PIL decodes exactly)")
@pytest.mark.parametrize("stem, name, box", _decode_cases())
def test_full_decode_with_torchs_resize_is_within_one_grey_level(decoder, stem, name, box):
    """The default (``train_resize: torch``): torch's uint8 kernel rounds where TF truncates,
    so a pixel is TF's or one more, never further, on every box."""
    got, want = _full_decode_and_resize(stem, name, box, tf=False)
    delta = got.astype(int) - want
    assert delta.min() >= 0 and delta.max() <= 1, (delta.min(), delta.max())
    if stem == "train_decode":  # large boxes: about half the pixels round up
        assert 0.2 < (delta == 1).mean() < 0.8


@pytest.mark.skipif(not USE_SIMPLEJPEG, reason="TF's DCT needs simplejpeg (PIL decodes exactly)")
@pytest.mark.parametrize("name, box", [c[1:] for c in _decode_cases() if c[0] == "train_crop"])
def test_window_edges_are_tfs_decode_and_crop_jpeg(decoder, name, box):
    """The window's first and last columns are TF's ``decode_and_crop_jpeg`` pixels exactly."""
    jpeg, window, _ = _case("train_crop", name, box)
    got = _window(jpeg, window)[:, [0, -1]]
    want = goldens("train_crop")[f"edges|{name}|{box}"]
    assert np.array_equal(got, want), int((got != want).any(-1).sum())


@pytest.mark.skipif(not USE_SIMPLEJPEG, reason="TF's DCT needs simplejpeg (PIL decodes exactly)")
def test_the_goldens_hold_windows_where_a_full_decode_is_not_tfs():
    """The crop windows exercise the difference: a plain full decode cropped misses TF's edge
    columns on the boxes `jpeg_crop.edge_columns` names (by up to tens of grey levels on the
    saturated checkerboards), and on no other."""
    worst = {}
    for _, name, box in (c for c in _decode_cases() if c[0] == "train_crop"):
        jpeg, window, _ = _case("train_crop", name, box)
        plain = _window(jpeg, window, tf_crop=False)[:, [0, -1]].astype(int)
        deviation = int(np.abs(plain - goldens("train_crop")[f"edges|{name}|{box}"]).max())
        subsampling = "444" if name.endswith("444") else name[-3:]
        columns, repeated = edge_columns(window[0], window[2], 118, subsampling)
        assert (deviation > 0) == bool(columns or repeated) or deviation == 0, (name, box)
        worst[name] = max(worst.get(name, 0), deviation)
    assert worst["checker444"] == 0 and worst["photo420"] > 0
    assert worst["checker420"] > 20 and worst["checker422"] > 20


@pytest.mark.skipif(not USE_SIMPLEJPEG, reason="TF's DCT needs simplejpeg (PIL decodes exactly)")
@pytest.mark.parametrize("box", [1, 3, 7])
def test_train_sample_is_big_vision_on_a_fixed_window(decoder, monkeypatch, box):
    """The whole training transform (no flip, no RandAugment), its crop draw fixed to the
    golden's window: big_vision's pixels within one grey level (torch's resize)."""
    import mlpmixer.data.transforms as transforms

    data = goldens("train_crop")
    top, left, h, w = (int(v) for v in data["box|checker420"][box])
    monkeypatch.setattr(transforms, "sample_inception_crop", lambda *_: (top, left, h, w))
    augment = SampleAugment(hflip=False)
    got = train_sample(data["jpeg|checker420"].tobytes(), (32, 32), augment,
                       np.random.default_rng(0))  # fmt: skip
    delta = got.permute(1, 2, 0).numpy().astype(int) - data[f"checker420|{box}|32"]
    assert delta.min() >= 0 and delta.max() <= 1, (delta.min(), delta.max())


def test_the_reduced_decode_is_the_documented_approximation():
    """``train_decode: reduced`` (a 1/2-1/8 DCT scale when the crop allows) is not big_vision's
    pixels: on a whole-image crop of the photograph, decoded at 1/2 scale, the mean deviation
    is a few grey levels (docs/training.md quotes the measurement)."""
    data = goldens("train_decode")
    jpeg = data["jpeg|photo420"].tobytes()
    array, box = _decode(jpeg, lambda h, w: (0.0, 0.0, float(w), float(h)), (40, 40), True, None,
                         fast_dct=True)  # fmt: skip
    assert array.shape[0] < 150  # decoded at a reduced scale
    got = crop_resize(array, box, (40, 40), "bilinear").permute(1, 2, 0).numpy()
    deviation = np.abs(got.astype(int) - data["photo420|0|40"])
    assert 1.0 < deviation.mean() < 10.0


def test_libjpegs_crop_decode_refuses_bad_data_with_libjpegs_message():
    """A damaged JPEG is a ValueError with libjpeg's own message (never the process ending:
    libjpeg's error_exit returns to the C wrapper), which `_decode` answers with PIL."""
    if jpeg_crop._library() is None:
        pytest.skip("jpeg_crop.c cannot be built here (C compiler, libjpeg headers)")
    data = goldens("train_crop")["jpeg|checker420"].tobytes()
    with pytest.raises(ValueError, match="JPEG"):
        jpeg_crop.decode_crop(data[:2] + b"\x00" * 64, (0, 0, 4, 4), True)
    with pytest.raises(ValueError, match="outside the 118x98 image"):
        jpeg_crop.decode_crop(data, (100, 0, 119, 4), True)
    assert jpeg_crop.decode_crop(data, (3, 5, 20, 9), True).shape == (4, 17, 3)
