"""Against the real timm and lucidrains' mlp-mixer-pytorch, through committed fixtures.

The fixtures are made by tests/fixtures/make_reference_fixtures.py (timm 1.0.31,
mlp-mixer-pytorch 0.3.1; neither is a dependency of this project): small random models of
every family, an input and the reference library's logits, plus the key -> shape tables of
timm's nine full-size family models.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import mlpmixer
from mlpmixer.checkpoints import read_checkpoint, save_model
from mlpmixer.checkpoints.timm_format import state_to_timm

FIXTURES = Path(__file__).parent.parent / "fixtures"
FAMILIES = ("mixer", "gmixer", "resmlp", "gmlp")
SHAPES = json.loads((FIXTURES / "timm_family_shapes.json").read_text())

# timm's parameter counts (with the 1000-class head), from timm 1.0.31:
#   PYTHONPATH=/work/venv-ref/standin /work/venv-ref/bin/python -c "import timm, torch; \
#   [print(n, sum(p.numel() for p in timm.create_model(n).parameters())) for n in NAMES]"
TIMM_PARAMS = {
    "gmlp_ti16_224": 5_867_328,
    "gmlp_s16_224": 19_422_656,
    "gmlp_b16_224": 73_075_392,
    "resmlp_12_224": 15_350_872,
    "resmlp_24_224": 30_020_680,
    "resmlp_36_224": 44_690_488,
    "resmlp_big_24_224": 129_138_280,
    "gmixer_12_224": 12_701_080,
    "gmixer_24_224": 24_721_096,
}


def read_case(name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, dict]:
    tensors = load_file(FIXTURES / f"{name}.safetensors")
    with safe_open(FIXTURES / f"{name}.safetensors", "pt") as f:
        config = json.loads(f.metadata()["config"])
    state = {k[len("state.") :]: v for k, v in tensors.items() if k.startswith("state.")}
    return state, tensors["input"], tensors["logits"], config


@pytest.mark.parametrize("family", FAMILIES)
def test_timm_weights_give_timms_logits(family, tmp_path):
    state, images, logits, _ = read_case(f"timm_{family}")
    save_file(state, tmp_path / "timm.safetensors")
    checkpoint = read_checkpoint(tmp_path / "timm.safetensors", img_size=(16, 24))
    assert checkpoint.format == "timm" and checkpoint.config.family == family
    model = mlpmixer.load_model(tmp_path / "timm.safetensors", img_size=(16, 24)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_conversion_to_timm_has_timms_keys_shapes_and_values(family, tmp_path):
    state, images, logits, _ = read_case(f"timm_{family}")
    save_file(state, tmp_path / "timm.safetensors")
    model = mlpmixer.load_model(tmp_path / "timm.safetensors", img_size=(16, 24)).eval()
    save_model(model, tmp_path / "back.pth", format="timm")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert set(back) == set(state)  # what load_state_dict(strict=True) checks ...
    for key, value in state.items():  # ... plus shapes and values
        assert back[key].shape == value.shape, key
        torch.testing.assert_close(back[key], value, atol=0, rtol=0)
    again = mlpmixer.load_model(tmp_path / "back.pth", img_size=(16, 24)).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(images), logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(TIMM_PARAMS))
def test_full_size_models_have_timms_keys_shapes_and_parameter_count(name):
    with torch.device("meta"):
        model = mlpmixer.create_model(name)
    assert model.num_params() == TIMM_PARAMS[name] == SHAPES[name]["params"]
    ours = {
        k: list(v.shape) for k, v in state_to_timm(model.state_dict(), model.config.family).items()
    }
    assert ours == SHAPES[name]["keys"]


@pytest.mark.parametrize("name", list(TIMM_PARAMS))
def test_architecture_is_inferred_from_timms_shapes(name):
    with torch.device("meta"):
        state = {k: torch.empty(v, device="meta") for k, v in SHAPES[name]["keys"].items()}
    from mlpmixer.checkpoints.architecture import infer_config
    from mlpmixer.checkpoints.timm_format import timm_to_state

    config = infer_config(timm_to_state(state))
    expected = mlpmixer.model_config(name)
    for field in ("family", "img_size", "patch_size", "hidden_dim", "num_blocks",
                  "tokens_mlp_dim", "channels_mlp_dim", "num_classes"):  # fmt: skip
        assert getattr(config, field) == getattr(expected, field), field


@pytest.mark.parametrize("case", ["square", "nonsquare", "gray"])
def test_lucidrains_weights_give_its_logits(case, tmp_path):
    state, images, logits, config = read_case(f"lucidrains_{case}")
    torch.save(state, tmp_path / "lucid.pth")
    size = config["image_size"]
    # Square grids are inferred; a non-square one needs the image size.
    options = {"img_size": tuple(size)} if isinstance(size, list) else {}
    checkpoint = read_checkpoint(tmp_path / "lucid.pth", **options)
    assert checkpoint.format == "lucidrains"
    c = checkpoint.config
    assert c.in_chans == config["channels"] and c.patch_size == (config["patch_size"],) * 2
    assert c.num_blocks == config["depth"] and c.hidden_dim == config["dim"]
    assert c.tokens_mlp_dim == int(config.get("expansion_factor", 4) * config["dim"])
    assert c.channels_mlp_dim == int(config.get("expansion_factor_token", 0.5) * config["dim"])
    model = mlpmixer.load_model(tmp_path / "lucid.pth", **options).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), logits, atol=1e-4, rtol=0)


def test_facebook_resmlp_names_load_like_timms(tmp_path):
    # deit's resmlp_models.py names, written out by hand from its source: patch_embed, attn,
    # gamma_1/2, mlp, and (C,)-shaped Affine parameters.
    state, images, logits, _ = read_case("timm_resmlp")
    table = {"stem.": "patch_embed.", "linear_tokens": "attn", "mlp_channels": "mlp",
             "ls1": "gamma_1", "ls2": "gamma_2"}  # fmt: skip
    facebook = {}
    for key, value in state.items():
        for theirs, fb in table.items():
            key = key.replace(theirs, fb)
        facebook[key] = value.flatten() if key.endswith((".alpha", ".beta")) else value
    torch.save({"model": facebook}, tmp_path / "resmlp_12_no_dist.pth")
    checkpoint = read_checkpoint(tmp_path / "resmlp_12_no_dist.pth", img_size=(16, 24))
    assert checkpoint.format == "facebook" and checkpoint.config.family == "resmlp"
    model = mlpmixer.load_model(tmp_path / "resmlp_12_no_dist.pth", img_size=(16, 24)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), logits, atol=1e-4, rtol=0)


def _as_json(value):
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("name", ["mixer_b16_224", *TIMM_PARAMS])
def test_preprocessing_and_parameter_groups_equal_timms(name):
    with torch.device("meta"):
        model = mlpmixer.create_model(name)
    timm = SHAPES[name]
    ours = {k: v for k, v in _as_json(model.pretrained_cfg).items() if k in timm["pretrained_cfg"]}
    assert ours == timm["pretrained_cfg"]
    assert _as_json(model.group_matcher()) == timm["group_matcher"]


@pytest.mark.parametrize("family", FAMILIES)
def test_timm_hub_folder_round_trip_keeps_family_and_preprocessing(family, tmp_path):
    state, images, logits, _ = read_case(f"timm_{family}")
    save_file(state, tmp_path / "timm.safetensors")
    model = mlpmixer.load_model(
        tmp_path / "timm.safetensors", img_size=(16, 24), mean=(0.1, 0.2, 0.3), crop_pct=0.9
    ).eval()
    save_model(model, tmp_path / "hub", format="timm")
    hub_config = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert hub_config["architecture"] == f"{family}_custom"
    again = mlpmixer.load_model(tmp_path / "hub")  # img_size from the hub config
    assert again.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(again(images), logits, atol=1e-4, rtol=0)
