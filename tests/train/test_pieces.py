"""Sampler, schedule, optimizer groups, augmentation and loss, each against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from mlpmixer.models import create_model
from mlpmixer.train.augment import DeviceAugment
from mlpmixer.train.config import AugmentSection, OptimSection, ScheduleSection
from mlpmixer.train.ema import ModelEma
from mlpmixer.train.loop import compute_loss
from mlpmixer.train.optim import build_optimizer, build_scheduler, lr_factor
from mlpmixer.train.sampler import ShardSampler, TrainBatchSampler, epoch_permutation

TINY = {"hidden_dim": 8, "num_blocks": 1, "tokens_mlp_dim": 4, "channels_mlp_dim": 16}


def test_global_batches_do_not_depend_on_the_number_of_processes():
    n, batch = 103, 12
    single = TrainBatchSampler(n, batch, seed=5)
    single.set_epoch(2)
    global_batches = [set(b) for b in single]
    assert len(global_batches) == single.steps_per_epoch == 8
    order = epoch_permutation(n, 5, 2).tolist()
    assert global_batches[3] == set(order[36:48])  # batch i = slice i of the epoch's permutation
    for world, accum in ((2, 1), (3, 2), (2, 3)):
        shards = [TrainBatchSampler(n, batch, 5, rank, world, accum) for rank in range(world)]
        for s in shards:
            s.set_epoch(2)
        streams = [list(s) for s in shards]
        assert all(len(stream) == 8 * accum for stream in streams)
        for step in range(8):
            union = [
                i
                for stream in streams
                for b in stream[step * accum : (step + 1) * accum]
                for i in b
            ]
            assert len(union) == batch and set(union) == global_batches[step]
    resumed = TrainBatchSampler(n, batch, seed=5)
    resumed.set_epoch(2, start_step=5)
    assert [set(b) for b in resumed] == global_batches[5:] and len(resumed) == 3
    assert epoch_permutation(n, 5, 3).tolist() != order


def test_sampler_rejects_uneven_batches_and_shards_cover_everything():
    with pytest.raises(ValueError, match="divisible"):
        TrainBatchSampler(100, 10, 0, world_size=3)
    shards = [list(ShardSampler(10, r, 3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(10))


def test_schedule_matches_the_formulas():
    # warmup 4 steps to the peak, then cosine to end_factor over the remaining 10 steps
    values = [lr_factor(s, 14, 4, "cosine", 0.1) for s in range(14)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert math.isclose(values[4], 1.0) and math.isclose(values[-1], 0.1)
    mid = 4 + 9 / 2
    assert math.isclose(
        lr_factor(8.5, 14, 4, "cosine", 0.0), 0.5 * (1 + math.cos(math.pi * (mid - 4) / 9))
    )
    assert [lr_factor(s, 6, 0, "linear", 0.0) for s in range(6)] == pytest.approx(
        [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]
    )
    assert lr_factor(100, 10, 2, "constant", 0.0) == 1.0
    model = create_model("mixer_t2_8", **TINY)
    optimizer = build_optimizer(model, OptimSection(lr=0.5))
    scheduler = build_scheduler(
        optimizer,
        ScheduleSection(name="linear", warmup_steps=2, end_lr=0.05, scale_warmup=False),
        0.5,
        7,
        7,
    )
    seen = []
    for _ in range(7):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.5 * lr_factor(s, 7, 2, "linear", 0.1) for s in range(7)]
    assert seen == pytest.approx(expected) and seen[-1] == pytest.approx(0.05)


def test_no_weight_decay_on_norms_and_biases():
    model = create_model("mixer_t2_8", **TINY)
    optimizer = build_optimizer(model, OptimSection(name="sgd", lr=0.1, weight_decay=0.3))
    decayed, plain = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.3 and plain["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and p.ndim > 1 for p in decayed["params"])
    assert {names[id(p)] for p in plain["params"]} >= {"norm.weight", "norm.bias", "head.bias"}
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    assert isinstance(build_optimizer(model, OptimSection()), torch.optim.AdamW)


def _augment(**kwargs):
    cfg = AugmentSection(**kwargs)
    return DeviceAugment(
        cfg, (8, 8), (0.5,), (0.25,), num_classes=4, label_smoothing=kwargs.pop("ls", 0.0)
    )


def test_normalisation_and_label_smoothing():
    images, labels = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    aug = DeviceAugment(AugmentSection(), (8, 8), (0.5,), (0.25,), 4, label_smoothing=0.2)
    out, targets = aug(images, labels)
    assert torch.allclose(out, (images - 0.5) / 0.25)
    assert torch.allclose(targets[0], torch.tensor([0.85, 0.05, 0.05, 0.05]))


def test_mixup_mixes_images_and_targets_with_one_lambda():
    torch.manual_seed(0)
    images, labels = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0])
    out, targets = _augment(mixup_alpha=0.4)(images, labels)
    normed = (images - 0.5) / 0.25
    onehot = torch.nn.functional.one_hot(labels, 4).float()
    lam = ((out - normed.roll(1, 0)) / (normed - normed.roll(1, 0)))[1].flatten().median().item()
    assert torch.allclose(out, lam * normed + (1 - lam) * normed.roll(1, 0), atol=1e-5)
    assert torch.allclose(targets, lam * onehot + (1 - lam) * onehot.roll(1, 0), atol=1e-5)
    assert torch.allclose(targets.sum(-1), torch.ones(5))


def test_cutmix_targets_follow_the_pasted_area():
    torch.manual_seed(1)
    images = torch.zeros(4, 1, 8, 8)
    images[1] = 1.0  # only example 1 is bright, so pasted areas are visible
    labels = torch.tensor([0, 1, 2, 3])
    out, targets = _augment(cutmix_alpha=1.0)(images, labels)
    bright = ((out * 0.25 + 0.5) > 0.5).float().mean(dim=(1, 2, 3))  # share of example 1's pixels
    assert torch.allclose(targets[:, 1], bright, atol=1e-6)
    assert torch.allclose(targets.sum(-1), torch.ones(4))


@pytest.mark.parametrize(
    "kwargs", [{"pad_crop": 2}, {"affine_degrees": 10.0, "affine_translate": 0.1}]
)
def test_device_geometric_ops_keep_shape_and_range(kwargs):
    torch.manual_seed(0)
    images = torch.rand(4, 3, 8, 8)
    aug = DeviceAugment(AugmentSection(**kwargs), (8, 8), (0.0,) * 3, (1.0,) * 3, num_classes=4)
    out, _ = aug(images, torch.arange(4))
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, images)


def test_crop_flip_and_randaugment_are_not_done_on_the_device():
    """They are the data sets' (one definition, `mlpmixer.data.transforms`), for arrays too."""
    images = torch.rand(4, 3, 8, 8)
    cfg = AugmentSection(random_resized_crop=True, hflip=True, randaugment_n=2)
    aug = DeviceAugment(cfg, (8, 8), (0.0,) * 3, (1.0,) * 3, num_classes=4)
    assert len(aug.ops) == 0
    assert torch.equal(aug(images, torch.arange(4))[0], images)


def test_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([0, 2])
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    assert torch.allclose(
        compute_loss(logits, onehot, "softmax"), torch.nn.functional.cross_entropy(logits, labels)
    )
    expected = -(
        onehot * torch.log(torch.sigmoid(logits))
        + (1 - onehot) * torch.log(1 - torch.sigmoid(logits))
    )
    assert torch.allclose(compute_loss(logits, onehot, "sigmoid"), expected.sum(-1).mean())


def test_ema_is_an_exponential_average():
    model = torch.nn.Linear(2, 1)
    ema = ModelEma(model, decay=0.75)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, 0.75 * start + 0.25 * (start + 1.0))
