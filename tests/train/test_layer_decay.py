"""Layer-wise LR decay: scale = decay^(L - layer) by group_matcher; head 1, stem smallest."""

from __future__ import annotations

import pytest
import torch

from mlpmixer import ConfigError, create_model
from mlpmixer.train.config import OptimSection, ScheduleSection, TrainConfig, validate
from mlpmixer.train.optim import build_optimizer, build_scheduler

SMALL = {"img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "hidden_dim": 16,
         "num_blocks": 3, "tokens_mlp_dim": 16, "channels_mlp_dim": 32, "mean": (0.5,),
         "std": (0.5,)}  # fmt: skip


def _expected_layer(name: str, n: int) -> int:
    # written from timm's convention, independently of group_matcher's regexes
    if name.startswith("stem."):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return n + 1  # final norm and head


@pytest.mark.parametrize(
    "name", ["mixer_s16_224", "gmlp_s16_224", "resmlp_12_224", "gmixer_12_224"]
)
def test_each_parameter_gets_decay_to_the_power_of_its_distance_from_the_head(name):
    model = create_model(name, **SMALL)
    lr, decay, n = 0.1, 0.5, SMALL["num_blocks"]
    optimizer = build_optimizer(model, OptimSection(name="sgd", lr=lr, weight_decay=0.01), decay)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    for pname, p in model.named_parameters():
        assert lr_of[id(p)] == pytest.approx(lr * decay ** (n + 1 - _expected_layer(pname, n)))
        assert wd_of[id(p)] == (0.0 if p.ndim <= 1 else 0.01)
    assert lr_of[id(model.head.weight)] == lr
    assert lr_of[id(model.stem.proj.weight)] == pytest.approx(lr * decay ** (n + 1))
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_the_schedule_scales_every_layer_from_its_own_peak():
    model = create_model("mixer_s16_224", **SMALL)
    optimizer = build_optimizer(model, OptimSection(name="sgd", lr=1.0), 0.5)
    scheduler = build_scheduler(optimizer, ScheduleSection(name="cosine"), 1.0, 10, 10)
    optimizer.step()
    scheduler.step()
    ratios = {g["lr"] / g["lr_scale"] for g in optimizer.param_groups}
    assert max(ratios) == pytest.approx(min(ratios)) and 0 < min(ratios) < 1


def test_no_decay_keeps_two_groups_and_bad_values_are_refused():
    model = create_model("mixer_s16_224", **SMALL)
    assert len(build_optimizer(model, OptimSection(), None).param_groups) == 2
    assert len(build_optimizer(model, OptimSection(), 1.0).param_groups) == 2
    config = TrainConfig()
    config.train.layer_decay = 1.5
    with pytest.raises(ConfigError, match="train.layer_decay"):
        validate(config)
    assert torch.is_tensor(model.head.weight)
