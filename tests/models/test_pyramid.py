"""The pieces the zoo families share (models/staged.py), on the three NCHW pyramid families."""

from __future__ import annotations

import pytest
import torch

from mlpmixer.errors import ConfigError
from mlpmixer.models.as_mlp import AsMlp, AsMlpConfig
from mlpmixer.models.staged import drop_path_rates, level_sizes
from mlpmixer.models.wave_mlp import WaveMlpConfig


def test_drop_path_rates_rise_linearly_over_all_blocks() -> None:
    """As the official codes draw them: torch.linspace(0, rate, sum(depths)), cut per level."""
    depths = (2, 2, 6, 2)
    rates = drop_path_rates(depths, 0.3)
    assert [len(r) for r in rates] == list(depths)
    flat = [r for level in rates for r in level]
    expected = torch.linspace(0, 0.3, 12, dtype=torch.float64)
    torch.testing.assert_close(torch.tensor(flat, dtype=torch.float64), expected)
    assert drop_path_rates((1, 0, 0, 0), 0.5) == [[0.0], [], [], []]


def test_level_sizes_follow_the_strided_convs() -> None:
    conv = torch.nn.Conv2d(1, 1, 7, stride=4, padding=2)
    down = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1)
    for size in [(224, 224), (37, 61), (3, 5)]:
        x = conv(torch.zeros(1, 1, *size))
        shapes = [tuple(x.shape[2:])]
        for _ in range(3):
            x = down(x)
            shapes.append(tuple(x.shape[2:]))
        assert level_sizes(size) == shapes


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"mean": (0.5, 0.5)}, "mean must be 3 numbers"),
        ({"std": (0.2, 0.0, 0.2)}, "std must be positive"),
        ({"interpolation": "lanczos"}, "interpolation must be one of"),
        ({"crop_pct": 0}, "crop_pct"),
        ({"num_classes": -1}, "num_classes"),
        ({"in_chans": True}, "in_chans"),
        ({"img_size": (224, 0)}, "img_size"),
        ({"depths": "2222"}, "depths"),
    ],
)
def test_common_fields_are_checked_by_name(changes, match) -> None:
    with pytest.raises(ConfigError, match=match):
        WaveMlpConfig(**changes)


def test_from_dict_wants_a_mapping_and_replace_known_fields() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        AsMlpConfig.from_dict([("embed_dim", 8)])
    with pytest.raises(ConfigError, match="unknown AsMlpConfig field"):
        AsMlpConfig().replace(hidden_dim=8)


def test_indices_and_pools_refused() -> None:
    model = AsMlp(AsMlpConfig(embed_dim=4, depths=(1, 1, 1, 1), num_classes=3, img_size=32))
    images = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ConfigError, match="last-n"):
        model.forward_intermediates(images, indices=5)
    with pytest.raises(ConfigError, match="global_pool"):
        model.reset_classifier(3, global_pool="max")


def _tiny_models() -> list[torch.nn.Module]:
    from mlpmixer.models.hire_mlp import HireMlp, HireMlpConfig
    from mlpmixer.models.wave_mlp import WaveMlp

    small = {"depths": (1, 2, 1, 1), "num_classes": 3}
    return [
        AsMlp(AsMlpConfig(embed_dim=4, img_size=32, **small)),
        WaveMlp(WaveMlpConfig(embed_dims=(4, 8, 8, 12), img_size=32, **small)),
        HireMlp(HireMlpConfig(embed_dims=(4, 8, 8, 12), img_size=32, **small)),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["asmlp", "wavemlp", "hiremlp"])
def test_grad_checkpointing_gives_the_same_gradients(index: int) -> None:
    torch.manual_seed(0)
    model = _tiny_models()[index].train()
    images = torch.randn(2, 3, 32, 32)
    model(images).square().sum().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    calls = []
    first_block = next(iter(model._level_blocks(0)))
    first_block.register_forward_pre_hook(lambda *_: calls.append(1))
    model(images).square().sum().backward()
    assert len(calls) == 2  # run again in backward: checkpointing is on
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], msg=name)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["asmlp", "wavemlp", "hiremlp"])
def test_group_matcher_and_weight_decay_groups(index: int) -> None:
    import re

    model = _tiny_models()[index]
    matcher = model.group_matcher()
    names = [n for n, _ in model.named_parameters()]
    stem = [n for n in names if re.match(matcher["stem"], n)]
    levels = {int(m.group(1)) for n in names if (m := re.match(matcher["blocks"][0][0], n))}
    unmatched = [n for n in names if n not in stem and not any(
        re.match(pattern, n) for pattern, _ in matcher["blocks"])]  # fmt: skip
    assert stem and all(n.startswith("patch_embed.") for n in stem)
    assert len(levels) >= 4 and unmatched == ["head.weight", "head.bias"]
    decayed, free = model.param_groups(0.05)
    assert decayed["weight_decay"] == 0.05 and free["weight_decay"] == 0.0
    assert sum(p.numel() for g in (decayed, free) for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim <= 1 for p in free["params"])
    assert model.no_weight_decay() == {n for n, p in model.named_parameters() if p.ndim <= 1}


@pytest.mark.parametrize("index", [0, 1, 2], ids=["asmlp", "wavemlp", "hiremlp"])
def test_pruned_model_gives_the_same_levels(index: int) -> None:
    """timm's features_only: prune after the last level taken; the levels stay the same."""
    model = _tiny_models()[index].eval()
    images = torch.randn(2, 3, 32, 32)
    full = model.forward_intermediates(images, intermediates_only=True)
    before = sum(p.numel() for p in model.parameters())
    assert model.prune_intermediate_layers([0, 2], prune_norm=True) == [0, 2]
    assert sum(p.numel() for p in model.parameters()) < before
    assert isinstance(model.head, torch.nn.Identity) and isinstance(model.norm, torch.nn.Identity)
    kept = model.forward_intermediates(images, indices=[0, 2], intermediates_only=True)
    assert torch.equal(kept[0], full[0]) and torch.equal(kept[1], full[2])
    names = dict(model.named_modules())
    assert all(f["module"] in names for f in model.feature_info[:3])


def test_absurd_sizes_are_refused_before_building() -> None:
    """A hostile or mistyped config.json must not allocate terabytes or hang."""
    from mlpmixer.models.hire_mlp import HireMlpConfig

    with pytest.raises(ConfigError, match="parameters, more than the limit"):
        AsMlpConfig.from_dict({"embed_dim": 100_000})
    with pytest.raises(ConfigError, match="blocks, more than the limit"):
        WaveMlpConfig(depths=(2, 2, 10_000, 2))
    with pytest.raises(ConfigError, match="parameters, more than the limit"):
        HireMlpConfig(embed_dims=(64, 128, 320, 200_000))


@pytest.mark.parametrize("index", [0, 1, 2], ids=["asmlp", "wavemlp", "hiremlp"])
def test_the_projects_feature_getter_takes_the_levels(index: int) -> None:
    """features_only: `features.FeatureGetter` (what the project builds for it) on a pyramid
    model gives the chosen levels, pruned after the last one, with their feature_info."""
    from mlpmixer.models.features import FeatureGetter

    model = _tiny_models()[index].eval()
    images = torch.randn(2, 3, 32, 32)
    every = model.forward_intermediates(images, intermediates_only=True)
    assert len(model.blocks) == 4
    getter = FeatureGetter(model, out_indices=(1, 2))
    got = getter(images)
    assert [tuple(t.shape) for t in got] == [tuple(every[1].shape), tuple(every[2].shape)]
    assert torch.equal(got[0], every[1]) and torch.equal(got[1], every[2])
    assert getter.feature_info.channels() == [t.shape[1] for t in every[1:3]]
    assert getter.feature_info.reduction() == [8, 16]
    assert len(model.blocks) == 3  # level 3 pruned


def test_class_names_follow_the_head() -> None:
    config = AsMlpConfig(embed_dim=4, depths=(1, 1, 1, 1), num_classes=2, img_size=32,
                         class_names=["cat", "dog"])  # fmt: skip
    assert config.class_names == ("cat", "dog")
    assert AsMlpConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="class_names has 1 names but num_classes is 2"):
        config.replace(class_names=["cat"])
    model = AsMlp(config)
    model.reset_classifier(3, class_names=["a", "b", "c"])
    assert model.config.class_names == ("a", "b", "c") and model.num_classes == 3
    model.reset_classifier(0)
    assert model.config.class_names is None
