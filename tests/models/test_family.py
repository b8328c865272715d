"""gMLP, ResMLP and gMixer against float64 NumPy references written from their papers, plus
the family-wide properties: analytic cost, tiling under resize, round trips."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import mlpmixer
from family_reference import REFERENCES
from mixer_testing import randomised
from mlpmixer.checkpoints.timm_format import state_to_timm
from mlpmixer.models import MixerConfig, build_model, flops_per_image, param_count

FIXTURES = __import__("pathlib").Path(__file__).parent.parent / "fixtures"
FAMILIES = ("mixer", "gmixer", "resmlp", "gmlp")
NEW_FAMILIES = ("gmixer", "resmlp", "gmlp")
NINE = [n for n in mlpmixer.list_models() if not n.startswith("mixer_")]


def small(family: str, **changes) -> MixerConfig:
    """A small non-square config of ``family`` (grid 4 × 6 of 2 × 3 patches)."""
    base = {
        "family": family, "img_size": (8, 18), "patch_size": (2, 3), "num_classes": 5,
        "hidden_dim": 16, "num_blocks": 2, "tokens_mlp_dim": 12, "channels_mlp_dim": 32,
        "gelu": "none",
    }  # fmt: skip
    return MixerConfig(**{**base, **changes})


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_matches_the_numpy_reference_of_the_paper(family):
    model = randomised(build_model(small(family)), seed=3)
    images = torch.randn(2, 3, 8, 18, generator=torch.Generator().manual_seed(1))
    timm_layout = {k: v.numpy() for k, v in state_to_timm(model.state_dict(), family).items()}
    expected = REFERENCES[family](timm_layout, images.double().numpy())
    with torch.no_grad():
        got = model.double()(images.double()).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)
    assert np.abs(expected).max() > 0.1  # not trivially zero


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_the_numpy_reference_agrees_with_timm(family):
    # The references are checked against the real timm too (through the fixtures).
    tensors = load_file(FIXTURES / f"timm_{family}.safetensors")
    state = {k[6:]: v.double().numpy() for k, v in tensors.items() if k.startswith("state.")}
    expected = tensors["logits"].double().numpy()
    got = REFERENCES[family](state, tensors["input"].double().numpy())
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NINE)
def test_analytic_parameter_count_equals_the_built_model(name):
    with torch.device("meta"):
        model = mlpmixer.create_model(name)
    assert model.num_params() == param_count(model.config)
    assert model.num_params(include_head=False) == param_count(model.config, include_head=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_analytic_flops_match_torch_flop_counter(family):
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(small(family)).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(2, 3, 8, 18))
    assert counter.get_total_flops() == 2 * flops_per_image(model.config)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("kh", "kw"), [(2, 2), (2, 3)])
def test_tiled_image_gives_the_original_logits(family, kh, kw):
    model = randomised(build_model(small(family)), seed=5)
    images = torch.randn(2, 3, 8, 18)
    big = model.resize((8 * kh, 18 * kw))
    assert type(big) is type(model) and big.config.num_tokens == 24 * kh * kw
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(big(images.repeat(1, 1, kh, kw)), expected, atol=1e-5, rtol=0)
        other = torch.randn(2, 3, 8 * kh, 18 * kw)
        assert (big(other) - expected).abs().max() > 1e-2  # the property is not trivial


@pytest.mark.parametrize("family", FAMILIES)
def test_native_save_round_trip_keeps_the_family(family, tmp_path):
    model = randomised(build_model(small(family)))
    model.save(tmp_path / "m")
    loaded = mlpmixer.load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    again = type(model).from_pretrained(tmp_path / "m")
    x = torch.randn(2, 3, 8, 18)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
        torch.testing.assert_close(again(x), model(x), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("family", "units"), [("mixer", 12), ("gmixer", 12), ("resmlp", 24), ("gmlp", 24)]
)
def test_token_mixing_weight_reads_the_tokens(family, units):
    model = build_model(small(family))
    weight = model.token_mixing_weight(1)
    assert weight.shape == (units, 24)  # S = 4 x 6 tokens
    assert any(weight is p for p in model.blocks[1].parameters())


def test_a_config_json_without_family_loads_as_a_mixer(tmp_path, monkeypatch):
    import mlpmixer.checkpoints.native as native

    def old_config_json(config):  # as written before the fields existed (checksum included)
        body = json.loads(real_config_json(config))
        del body["family"], body["layer_scale_init"]
        return json.dumps(body, indent=2) + "\n"

    real_config_json = native.config_json
    model = randomised(mlpmixer.MlpMixer(small("mixer")))
    monkeypatch.setattr(native, "config_json", old_config_json)
    model.save(tmp_path / "old")
    monkeypatch.setattr(native, "config_json", real_config_json)
    assert "family" not in json.loads((tmp_path / "old" / "config.json").read_text())
    loaded = mlpmixer.load_model(tmp_path / "old")
    assert type(loaded) is mlpmixer.MlpMixer and loaded.config == model.config


def test_unknown_family_and_odd_gated_widths_are_refused():
    with pytest.raises(mlpmixer.ConfigError, match="unknown model family .vit.; known: mixer"):
        small("vit")
    with pytest.raises(mlpmixer.ConfigError, match="channels_mlp_dim must be even for gmlp"):
        small("gmlp", channels_mlp_dim=33)
    with pytest.raises(mlpmixer.ConfigError, match="builds family 'gmlp'"):
        mlpmixer.models.GMlp(small("resmlp"))


def test_official_npz_refuses_other_families(tmp_path):
    model = build_model(small("gmlp"))
    with pytest.raises(mlpmixer.ConfigError, match="holds Mixers only"):
        mlpmixer.checkpoints.save_model(model, tmp_path / "x.npz")


def test_cost_of_an_unknown_family_is_refused_by_name():
    """Issue 28: flops.py's if-chains gave an unknown family gMLP's numbers; now every cost
    is the family spec's, and an unknown family is a ConfigError naming it."""
    from mlpmixer.models.flops import macs_per_image

    config = copy.copy(small("gmlp"))
    config.family = "vit"  # as a config built elsewhere, past validation
    for cost in (param_count, macs_per_image, flops_per_image):
        with pytest.raises(mlpmixer.ConfigError, match="unknown model family 'vit'; known: mixer"):
            cost(config)
