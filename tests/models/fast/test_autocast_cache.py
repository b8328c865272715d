"""Cached autocast weights: the same numbers as autocast's per-call casts, rebuilt on change."""

from __future__ import annotations

import copy

import pytest
import torch

from mixer_testing import randomised
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.models.fast import autocast_cache
from mlpmixer.models.plain import PlainMixer

CONFIG = MixerConfig(
    img_size=(16, 16), patch_size=(4, 4), in_chans=3, num_classes=7, hidden_dim=32,
    num_blocks=2, tokens_mlp_dim=16, channels_mlp_dim=64,
)  # fmt: skip


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _autocast_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        return model(images)


def _cached(model: torch.nn.Module) -> int:
    return sum(len(m.__dict__.get(autocast_cache._ATTR, {})) for m in model.modules())


@pytest.fixture
def model():
    return randomised(MlpMixer(CONFIG), seed=1).eval()


def test_cached_weights_give_autocast_numbers_exactly(model):
    """The cached bf16 copy is the cast autocast makes: bit-identical logits to the plain model."""
    images = _images()
    expected = _autocast_logits(PlainMixer.from_model(model).eval(), images)
    first = _autocast_logits(model, images)
    assert _cached(model) == 8 * CONFIG.num_blocks  # 4 weights + 4 biases per block
    second = _autocast_logits(model, images)  # from the cache
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    assert ((first.float() - expected.float()).abs().max() / expected.float().abs().max()) < 2e-2


@pytest.mark.parametrize(
    "change",
    [
        "no_grad_in_place",
        "optimizer_step",
        "load_state_dict",
        "replace_parameter",
        "assign_data",
        "to_double_and_back",
    ],
)
def test_cache_is_rebuilt_when_weights_change(model, change):
    images = _images()
    _autocast_logits(model, images)  # fill the cache
    fc1 = model.blocks[0].channel_mixing.fc1
    token_fc2 = model.blocks[1].token_mixing.fc2
    if change == "no_grad_in_place":
        with torch.no_grad():
            fc1.weight.mul_(3.0)
            token_fc2.bias.add_(1.0)
    elif change == "optimizer_step":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        model(images).square().mean().backward()
        opt.step()
        model.eval()
    elif change == "load_state_dict":
        other = randomised(MlpMixer(CONFIG), seed=2)
        model.load_state_dict(other.state_dict())
    elif change == "replace_parameter":
        fc1.weight = torch.nn.Parameter(torch.randn_like(fc1.weight))
    elif change == "assign_data":
        fc1.weight.data = torch.randn_like(fc1.weight)
    elif change == "to_double_and_back":
        with torch.no_grad():
            fc1.weight.mul_(-1.0)  # with a real change, so that the test can fail
        model.double().float()
    fresh = MlpMixer.from_state_dict(model.state_dict(), CONFIG).eval()
    torch.testing.assert_close(
        _autocast_logits(model, images), _autocast_logits(fresh, images), atol=0, rtol=0
    )


def test_writes_through_data_need_clear(model):
    """The documented limit: ``p.data`` writes are invisible; `clear` drops the copies."""
    images = _images()
    _autocast_logits(model, images)
    with torch.no_grad():
        model.blocks[0].channel_mixing.fc1.weight.data.mul_(3.0)
    autocast_cache.clear(model)
    assert _cached(model) == 0
    fresh = MlpMixer.from_state_dict(model.state_dict(), CONFIG).eval()
    torch.testing.assert_close(
        _autocast_logits(model, images), _autocast_logits(fresh, images), atol=0, rtol=0
    )


def test_no_cache_outside_autocast_inference(model):
    images = _images()
    with torch.no_grad():
        model(images)  # fp32 inference
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.train()(images)  # autocast training: autograd must reach the parameters
    out.float().sum().backward()
    assert _cached(model) == 0
    assert all(p.grad is not None for p in model.parameters())


def test_wrapped_linear_is_called_not_bypassed(model):
    """A replaced module (LoRA, quantised) or a hook must run: only plain nn.Linear is cached."""
    seen = []
    fc2 = model.blocks[0].channel_mixing.fc2
    fc2.register_forward_hook(lambda *args: seen.append(1))
    _autocast_logits(model, _images())
    assert seen == [1]
    assert "fc2" not in model.blocks[0].channel_mixing.__dict__.get(autocast_cache._ATTR, {})


def test_deepcopy_does_not_share_stale_copies(model):
    images = _images()
    _autocast_logits(model, images)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.blocks[0].channel_mixing.fc1.weight.mul_(2.0)
    fresh = MlpMixer.from_state_dict(twin.state_dict(), CONFIG).eval()
    torch.testing.assert_close(
        _autocast_logits(twin, images), _autocast_logits(fresh, images), atol=0, rtol=0
    )
