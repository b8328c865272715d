"""The module itself: reference numerics, options, timm-style methods, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mlpmixer
from mixer_reference import mixer_logits
from mixer_testing import randomised
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.checkpoints.official import state_to_official
from mlpmixer.models.init import lecun_normal_
from mlpmixer.models.mixer import drop_path

SMALL = {
    "img_size": (12, 20), "patch_size": (4, 4), "in_chans": 2, "num_classes": 7, "hidden_dim": 24,
    "num_blocks": 3, "tokens_mlp_dim": 10, "channels_mlp_dim": 40,
}  # fmt: skip


@pytest.mark.parametrize("gelu", ["tanh", "none"])
def test_forward_matches_numpy_reference_non_square(gelu):
    model = randomised(MlpMixer(MixerConfig(**SMALL, gelu=gelu)))
    images = torch.randn(4, 2, 12, 20)
    params = state_to_official(model.state_dict(), model.config.num_blocks)
    expected = mixer_logits(params, images.permute(0, 2, 3, 1).numpy(), gelu)
    with torch.no_grad():
        np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-5, rtol=0)


def test_features_head_and_pre_logits():
    model = randomised(MlpMixer(MixerConfig(**SMALL)))
    images = torch.randn(2, 2, 12, 20)
    with torch.no_grad():
        tokens = model.forward_features(images)
        assert tokens.shape == (2, 15, 24)  # S = 3 * 5 tokens, C = 24
        pooled = model.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(pooled, tokens.mean(1))
        torch.testing.assert_close(model.forward_head(tokens), model.head(pooled))
    headless = MlpMixer(MixerConfig(**{**SMALL, "num_classes": 0}))
    assert headless(images).shape == (2, 24)


@pytest.mark.slow
def test_fresh_model_is_uniform_and_init_is_lecun_normal():
    model = mlpmixer.create_model("mixer_s4_32")
    logits = model(torch.randn(3, 3, 32, 32))
    assert torch.count_nonzero(logits) == 0  # zero-initialised head, as in the official code
    w = model.blocks[0].channel_mixing.fc1.weight  # (1024, 256): fan_in 256
    assert abs(w.std().item() - 1 / 16) < 0.002 and w.abs().max() <= 2 / 16 / 0.8796 + 1e-6
    assert torch.count_nonzero(model.blocks[0].channel_mixing.fc1.bias) == 0
    big = torch.empty(4096, 4096)
    lecun_normal_(big)
    assert abs(big.std().item() * 64 - 1) < 0.01  # variance 1 / fan_in after truncation


def test_reset_classifier_and_weight_decay_groups():
    model = MlpMixer(MixerConfig(**SMALL, class_names=[str(i) for i in range(7)]))
    model.reset_classifier(3)
    assert model.head.weight.shape == (3, 24) and model.config.num_classes == 3
    assert model.config.class_names is None
    model.reset_classifier(0)
    assert isinstance(model.head, torch.nn.Identity)
    skip = model.no_weight_decay()
    assert "blocks.0.token_norm.weight" in skip and "stem.proj.bias" in skip
    assert "blocks.0.token_mixing.fc1.weight" not in skip
    decay, no_decay = model.param_groups(0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_drop_path_is_per_example_and_rises_linearly():
    model = MlpMixer(MixerConfig(**SMALL, drop_path_rate=0.3))
    assert [b.drop_path_rate for b in model.blocks] == pytest.approx([0.0, 0.15, 0.3])

    x = torch.ones(4000, 3, 5)
    torch.manual_seed(0)
    scaled = drop_path(x, 0.25, training=True, scale=True)
    per_example = scaled[:, 0, 0]
    assert torch.all(scaled == per_example[:, None, None])  # whole examples dropped or kept
    torch.testing.assert_close(per_example.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs(per_example.mean().item() - 1.0) < 0.05  # expectation kept (timm style)
    plain = drop_path(x, 0.25, training=True, scale=False)
    assert set(plain[:, 0, 0].unique().tolist()) == {0.0, 1.0}  # big_vision style
    assert drop_path(x, 0.25, training=False, scale=True) is x


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = randomised(MlpMixer(MixerConfig(**SMALL))).train()
    images = torch.randn(3, 2, 12, 20)
    model(images).square().sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(images).square().sum().backward()
    for p, g in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            (2, 2, 12, 24),
            r"expected images of shape \(batch, 2, 12, 20\), got \(2, 2, 12, 24\).*resize",
        ),
        ((2, 3, 12, 20), r"expected images of shape \(batch, 2, 12, 20\), got \(2, 3, 12, 20\)"),
        ((2, 12, 20, 2), r"got \(2, 12, 20, 2\) \(channels-last"),
        ((2, 12, 20), r"got \(2, 12, 20\)"),
    ],
)
def test_wrong_inputs_are_named(shape, message):
    model = MlpMixer(MixerConfig(**SMALL))
    with pytest.raises(mlpmixer.InputShapeError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"img_size": 30, "patch_size": 4},
            r"img_size \(30, 30\) is not divisible by patch_size \(4, 4\)",
        ),
        ({"img_size": (32, 30)}, "width 30 leaves 2 pixels"),
        ({"patch_size": 0}, "patch_size must be positive"),
        ({"img_size": -8}, "img_size must be positive"),
        ({"img_size": (8, 8, 8)}, "img_size must be an int or a pair"),
        ({"hidden_dim": 0}, "hidden_dim must be an int > 0, got 0"),
        ({"num_blocks": 2.5}, "num_blocks must be an int > 0, got 2.5"),
        ({"num_classes": -1}, "num_classes must be an int >= 0"),
        ({"gelu": "relu"}, r"gelu must be one of \('tanh', 'none'\), got 'relu'"),
        ({"drop_path_rate": 1.0}, r"drop_path_rate must be a number in \[0, 1\)"),
        ({"mean": (0.1, 0.2)}, "mean has 2 values"),
        ({"class_names": ["a"]}, "class_names has 1 names but num_classes is 10"),
        ({"depth": 3}, r"unknown MixerConfig field\(s\) \['depth'\]"),
    ],
)
def test_invalid_configurations_fail_at_once(overrides, message):
    with pytest.raises(mlpmixer.ConfigError, match=message):
        mlpmixer.create_model("mixer_s4_32", **overrides)


@pytest.mark.slow
def test_registry_names_and_errors():
    assert mlpmixer.create_model("B/16").config == mlpmixer.create_model("mixer_b16_224").config
    assert mlpmixer.model_config("Mixer-L/16").hidden_dim == 1024
    assert mlpmixer.model_config("h14").patch_size == (14, 14)
    assert mlpmixer.list_models("mixer_*_224") == [
        "mixer_s32_224", "mixer_s16_224", "mixer_b32_224", "mixer_b16_224",
        "mixer_l32_224", "mixer_l16_224", "mixer_h14_224",
    ]  # fmt: skip
    with pytest.raises(
        mlpmixer.ConfigError, match="unknown model 'mixer_x99'; known models: mixer_s32_224"
    ):
        mlpmixer.create_model("mixer_x99")
    with pytest.raises(mlpmixer.ConfigError, match="unknown tag 'foo' for mixer_b16_224"):
        mlpmixer.create_model("mixer_b16_224.foo")
    with pytest.raises(mlpmixer.ConfigError, match="no published weights for 'mixer_t2_8'"):
        mlpmixer.create_model("mixer_t2_8", pretrained=True)
