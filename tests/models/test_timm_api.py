"""timm's model API on every family model, checked against timm's own outputs where it has
numbers (forward_intermediates, through the fixtures) and its documented semantics elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import mlpmixer
from mixer_testing import randomised
from mlpmixer.models import MixerConfig, build_model

FIXTURES = Path(__file__).parent.parent / "fixtures"
FAMILIES = ("mixer", "gmixer", "resmlp", "gmlp")


def small(family: str) -> MixerConfig:
    return MixerConfig(
        family=family, img_size=(8, 12), patch_size=(2, 3), num_classes=5, hidden_dim=16,
        num_blocks=3, tokens_mlp_dim=8, channels_mlp_dim=32, gelu="none",
    )  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_intermediates_equal_timms(family, tmp_path):
    tensors = load_file(FIXTURES / f"timm_{family}.safetensors")
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("state.")}
    save_file(state, tmp_path / "timm.safetensors")
    model = mlpmixer.load_model(tmp_path / "timm.safetensors", img_size=(16, 24)).eval()
    with torch.no_grad():
        features, blocks = model.forward_intermediates(tensors["input"])
    torch.testing.assert_close(features, tensors["features"], atol=1e-4, rtol=0)
    assert len(blocks) == 2
    for i, y in enumerate(blocks):
        assert y.shape == (2, 16, 4, 6)  # NCHW: (B, C, grid h, grid w)
        torch.testing.assert_close(y, tensors[f"intermediate.{i}"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_intermediates_selection_format_and_norm(family):
    model = randomised(build_model(small(family)))
    x = torch.randn(2, 3, 8, 12)
    with torch.no_grad():
        features, every = model.forward_intermediates(x, output_fmt="NLC")
        assert len(every) == 3 and every[0].shape == (2, 16, 16)
        torch.testing.assert_close(features, model.forward_features(x), atol=0, rtol=0)
        last_two = model.forward_intermediates(
            x, indices=2, output_fmt="NLC", intermediates_only=True
        )
        torch.testing.assert_close(last_two, every[1:], atol=0, rtol=0)
        picked = model.forward_intermediates(
            x, indices=[0, -1], output_fmt="NLC", intermediates_only=True
        )
        torch.testing.assert_close(picked, [every[0], every[2]], atol=0, rtol=0)
        normed = model.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)
        nchw = features.reshape(2, 4, 4, 16).permute(0, 3, 1, 2)
        torch.testing.assert_close(normed[0], nchw, atol=0, rtol=0)
        early, taken = model.forward_intermediates(
            x, indices=[0], stop_early=True, output_fmt="NLC"
        )
        torch.testing.assert_close(taken, every[:1], atol=0, rtol=0)
        torch.testing.assert_close(early, model.norm(every[0]), atol=0, rtol=0)
    for bad in ([3], [-4], 0, 4):
        with pytest.raises(mlpmixer.ConfigError, match="indices|out of range"):
            model.forward_intermediates(x, indices=bad)
    with pytest.raises(mlpmixer.ConfigError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_api(family):
    model = randomised(build_model(small(family)))
    x = torch.randn(2, 3, 8, 12)
    assert model.num_features == model.head_hidden_size == 16
    assert model.get_classifier() is model.head
    with torch.no_grad():
        tokens = model.forward_features(x)
        pooled = model.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(pooled, tokens.mean(dim=1), atol=0, rtol=0)
        torch.testing.assert_close(model.head(pooled), model(x), atol=0, rtol=0)
    model.reset_classifier(7)
    assert model.num_classes == 7 and model(x).shape == (2, 7)
    assert not model.get_classifier().weight.any()  # a fresh head starts at zero
    model.reset_classifier(0, global_pool="")
    assert model(x).shape == (2, 16, 16)  # no head, no pooling: the tokens
    with pytest.raises(mlpmixer.ConfigError, match="global_pool"):
        model.reset_classifier(3, global_pool="max")


@pytest.mark.parametrize("family", FAMILIES)
def test_pretrained_cfg_describes_the_preprocessing(family):
    with torch.device("meta"):  # shapes only: no time spent initialising full-size weights
        model = mlpmixer.create_model(
        {"mixer": "mixer_t2_8", "gmixer": "gmixer_12_224", "resmlp": "resmlp_12_224",
             "gmlp": "gmlp_ti16_224"}[family]
        )  # fmt: skip
    cfg = model.pretrained_cfg
    assert cfg == model.default_cfg
    c = model.config
    assert cfg["input_size"] == (c.in_chans, *c.img_size)
    assert (cfg["mean"], cfg["std"]) == (c.mean, c.std)
    assert (cfg["interpolation"], cfg["crop_pct"]) == (c.interpolation, c.crop_pct)
    assert cfg["classifier"] == "head" and cfg["first_conv"] == "stem.proj"
    assert dict(model.named_modules())[cfg["first_conv"]] is model.stem.proj
    if family in ("gmixer", "resmlp"):
        assert cfg["mean"] == (0.485, 0.456, 0.406)


@pytest.mark.parametrize("family", FAMILIES)
def test_group_matcher_groups_stem_blocks_and_norm_like_timm(family):
    model = build_model(small(family))
    matcher = model.group_matcher()
    assert matcher == model.group_matcher(coarse=True)
    block_pattern, norm_pattern = matcher["blocks"]
    groups = {}
    for name, _ in model.named_parameters():
        if re.match(matcher["stem"], name):
            groups.setdefault("stem", []).append(name)
        elif m := re.match(block_pattern[0], name):
            groups.setdefault(int(m.group(1)), []).append(name)
        elif re.match(norm_pattern[0], name):
            groups.setdefault(norm_pattern[1][0], []).append(name)
        else:
            groups.setdefault("head", []).append(name)
    assert sorted(k for k in groups if isinstance(k, int)) == [0, 1, 2, 99999]
    assert groups["stem"] == ["stem.proj.weight", "stem.proj.bias"]
    assert all(n.startswith("head.") for n in groups["head"])
