"""Sizes and the model are decided once, before data or model is built (`plan_inputs`), with
the one small-model rule docs/training.md describes (`data_defaults.model_for_side`).

Before: the data was loaded first and the model chosen from its size by a second rule (an
exact match among the small models, else Mixer-S/16), so a 64-pixel source trained a
224-pixel Mixer-S/16 on 4x4 tokens while the data defaults chose Mixer-S/4 for the same
images.
"""

from __future__ import annotations

import pytest

from mlpmixer.data.source import SourceBase
from mlpmixer.models import model_config
from mlpmixer.train import TrainConfig
from mlpmixer.train.data_defaults import LARGE_FROM, LARGE_MODEL, SMALL_MODELS, model_for_side
from mlpmixer.train.steps import plan_inputs


class Sized(SourceBase):
    def __init__(self, size):
        super().__init__("sized")
        self.native_size = size


def _plan(size, **model):
    config = TrainConfig.from_dict({"model": model})
    return plan_inputs(config, Sized(size))


@pytest.mark.parametrize(
    ("side", "expected"),
    [(8, "mixer_t2_8"), (16, "mixer_t2_8"), (28, "mixer_t4_28"), (32, "mixer_s4_32"),
     (64, "mixer_s4_32"), (LARGE_FROM - 1, "mixer_s4_32"), (LARGE_FROM, LARGE_MODEL),
     (4, "mixer_t2_8")],
)  # fmt: skip
def test_the_one_small_model_rule(side, expected):
    assert model_for_side(side) == expected
    plan = _plan((side, side))
    assert plan.model_name == expected and plan.img_size == (side, side)


def test_the_rule_picks_the_largest_small_model_that_fits():
    for side in range(1, 300, 7):
        name = model_for_side(side)
        if side >= LARGE_FROM:
            assert name == LARGE_MODEL
            continue
        fits = [n for n in SMALL_MODELS if model_config(n).img_size[0] <= side]
        assert name == (fits[-1] if fits else SMALL_MODELS[0])


def test_sizes_come_from_the_config_then_the_model_then_the_source():
    assert _plan((64, 48)).img_size == (64, 48)  # the source's native size
    assert _plan((64, 48)).model_name == "mixer_s4_32"  # by its shorter side
    named = _plan((64, 64), name="mixer_t4_28")
    assert (named.model_name, named.img_size) == ("mixer_t4_28", (28, 28))  # the model's
    asked = _plan((64, 64), name="mixer_t4_28", img_size=[20, 24])
    assert asked.img_size == (20, 24)  # model.img_size wins
    auto = _plan((64, 64), img_size=224)
    assert (auto.model_name, auto.img_size) == (LARGE_MODEL, (224, 224))


def test_a_source_without_a_native_size_leaves_the_choice_to_its_data():
    plan = _plan(None)
    assert plan.model_name is None and plan.img_size is None


def test_resampling_and_crop_are_planned_once():
    config = TrainConfig.from_dict(
        {"data": {"interpolation": "bicubic", "eval_crop_pct": 0.875, "eval_resize": "area"}}
    )
    plan = plan_inputs(config, Sized((32, 32)))
    assert (plan.interpolation, plan.eval_interpolation, plan.crop_pct) == (
        "bicubic",
        "area",
        0.875,
    )
    plain = _plan((32, 32))
    assert (plain.interpolation, plain.eval_interpolation, plain.crop_pct) == (
        "bilinear",
        "bilinear",
        1.0,
    )
