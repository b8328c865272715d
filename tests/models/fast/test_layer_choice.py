"""Fast layers are chosen once, at construction, and change no number and no parameter name."""

from __future__ import annotations

import pytest
import torch

from mixer_testing import randomised
from mlpmixer import MixerConfig
from mlpmixer.models import build_model, fast
from mlpmixer.models.layers import PLAIN
from mlpmixer.models.plain import PlainMixer

FAMILIES = ["mixer", "gmixer", "resmlp", "gmlp"]
SMALL = dict(img_size=(16, 16), patch_size=(4, 4), in_chans=3, num_classes=5, hidden_dim=24,
             num_blocks=2, tokens_mlp_dim=8, channels_mlp_dim=48, gelu="tanh")  # fmt: skip


def _pair(family: str):
    config = MixerConfig(family=family, **SMALL)
    fast_model = randomised(build_model(config), seed=2).eval()
    plain = type(fast_model)(config, fast=False).eval()
    plain.load_state_dict(fast_model.state_dict())
    return fast_model, plain


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_and_plain_share_state_dicts_and_outputs(family):
    fast_model, plain = _pair(family)
    assert fast_model.fast_layers and not plain.fast_layers
    assert fast_model.state_dict().keys() == plain.state_dict().keys()
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fast_model(images), plain(images), atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_plain_models_hold_only_plain_layers(family):
    _, plain = _pair(family)
    assert not [m for m in plain.modules() if type(m).__module__.startswith("mlpmixer.models.fast")]


def test_the_process_default_and_the_environment(monkeypatch):
    fast.set_fast_layers(None)  # (conftest sets it: the environment decides here)
    monkeypatch.setenv("MLPMIXER_FAST", "0")
    assert fast.layer_set() is PLAIN and fast.layer_set(True) is fast.FAST
    monkeypatch.delenv("MLPMIXER_FAST")
    assert fast.layer_set() is fast.FAST
    fast.set_fast_layers(False)
    try:
        assert not build_model(MixerConfig(**SMALL)).fast_layers
    finally:
        fast.set_fast_layers(None)


def test_plain_mixer_is_mlp_mixer_with_plain_layers():
    model = PlainMixer(MixerConfig(**SMALL))
    assert isinstance(model, torch.nn.Module) and not model.fast_layers
    assert type(model.blocks[0].token_mixing) is PLAIN.token_mlp
