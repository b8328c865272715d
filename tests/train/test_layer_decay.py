"""Layer-wise LR decay: scale = decay^(L - layer) by group_matcher; head 1, stem smallest."""

from __future__ import annotations

import itertools

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


# the zoo's pyramids: tiny configs, several blocks in some stages
ZOO_SMALL = {
    "vip_s7": {"img_size": 8, "patch_size": 4, "depths": [2, 1], "embed_dims": [8, 8],
               "transitions": [False], "segment_dims": [2, 2], "mlp_ratios": [2, 2]},
    "cyclemlp_b1": {"img_size": 32, "depths": [2, 1, 1, 2], "embed_dims": [8, 8, 16, 16]},
    "asmlp_tiny": {"img_size": 32, "depths": [2, 1, 2, 1], "embed_dim": 8},
    "wavemlp_t": {"img_size": 32, "depths": [1, 2, 1, 1], "embed_dims": [8, 8, 16, 16]},
    "hiremlp_tiny": {"img_size": 32, "depths": [1, 1, 2, 1], "embed_dims": [8, 8, 16, 16]},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ZOO_SMALL))
def test_staged_models_decay_every_block_by_its_depth_through_the_stages(name):
    """Every parameter gets a group; the stem has the smallest LR, each block of each stage
    (in forward order: the stages' blocks from `blocks`) a larger one than the block before,
    the final norm and the head the full LR. (The ids once came from ``len(model.blocks)``,
    the number of stages: a late stage got a larger id than the head.)"""
    from mlpmixer.models.params import layer_ids

    model = create_model(name, **ZOO_SMALL[name])
    lr, decay = 0.1, 0.5
    optimizer = build_optimizer(model, OptimSection(name="sgd", lr=lr, weight_decay=0.01), decay)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    assert set(lr_of) == {id(p) for p in model.parameters()}
    blocks = [block for stage in model.blocks for block in stage]
    block_lrs = []
    for block in blocks:
        lrs = {lr_of[id(p)] for p in block.parameters()}
        assert len(lrs) == 1  # a block is one layer
        block_lrs.append(lrs.pop())
    stem = min(lr_of[id(p)] for p in model.patch_embed.parameters())
    top = {lr_of[id(p)] for p in [*model.norm.parameters(), *model.head.parameters()]}
    assert top == {lr}
    assert stem < block_lrs[0] and block_lrs[-1] < lr
    assert all(a < b for a, b in itertools.pairwise(block_lrs))  # deeper, larger
    ids = layer_ids(model)
    assert min(ids.values()) == 0 and max(ids.values()) == ids["head.weight"] == ids["norm.weight"]
