"""Issue 17 item 2: the timm folders we write are timm's, and the real timm loads them.

``timm.create_model("local-dir:DIR", pretrained=True, num_classes=N)`` must work for every
family, resized models included, with our logits when N is unchanged. timm is test-only and
installed without its dependencies (``make test`` does it); torchvision, which timm imports,
is replaced by the stand-in in benchmarks/standin when missing. timm registers its models
with fixed patch size, depth and width, so these are timm's smallest models of each family at
a small image size (which model_args can change).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import mlpmixer
from mixer_testing import randomised
from timm_adapter import import_timm


def _import_timm():
    timm = import_timm()
    if timm is None:
        pytest.skip(
            "timm is not installed: `pip install --no-deps timm` (make test does) to check "
            "that timm loads our timm folders",
            allow_module_level=True,
        )
    return timm


timm = _import_timm()


def _ours(name: str, img_size: int, **changes) -> mlpmixer.MlpFamilyModel:
    """timm's ``name`` at ``img_size`` with random weights (a random head too: zero logits
    would match anything). Built from a random state dict: initialising 5-18 M parameters
    with truncated normals took most of this file's time."""
    from mlpmixer.models import MlpFamilyModel, build_model
    from mlpmixer.models.registry import model_config

    config = model_config(name).replace(img_size=img_size, num_classes=3, gelu="none", **changes)
    if config.family in ("resmlp", "gmlp"):
        config = config.replace(tokens_mlp_dim=config.num_tokens)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_model(config).state_dict().items()}
    g = torch.Generator().manual_seed(0)
    state = {
        k: torch.randn(shape, generator=g) * (0.5 if len(shape) == 1 else shape[-1] ** -0.5)
        for k, shape in shapes.items()
    }
    return MlpFamilyModel.from_state_dict(state, config).eval()


def _write(model, path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # this shape is timm's: nothing to warn about
        mlpmixer.save_model(model, path, "timm")
    return json.loads((path / "config.json").read_text())


def _check_timm_loads(model, path: Path) -> None:
    """timm builds the folder with our logits, and with a new head for 7 classes."""
    theirs = timm.create_model(f"local-dir:{path}", pretrained=True).eval()
    x = torch.randn(2, model.config.in_chans, *model.config.img_size)
    with torch.no_grad():
        ours = model.eval()(x)
        assert ours.abs().max() > 0.1
        torch.testing.assert_close(theirs(x), ours, atol=2e-5, rtol=0)
    tuned = timm.create_model(f"local-dir:{path}", pretrained=True, num_classes=7)
    assert tuned.get_classifier().out_features == 7
    torch.testing.assert_close(tuned.stem.proj.weight, theirs.stem.proj.weight)  # loaded
    assert tuned(x).shape == (2, 7)


# (timm name, image size, resized size: tiled (integer multiple) or resampled)
CASES = [
    pytest.param("mixer_s32_224", 32, 64, id="mixer-tiled"),
    pytest.param("gmlp_ti16_224", 32, 48, id="gmlp-resampled"),
    pytest.param("mixer_s32_224", 64, 96, id="mixer-resampled", marks=pytest.mark.slow),
    pytest.param("gmixer_12_224", 32, 48, id="gmixer-resampled", marks=pytest.mark.slow),
    pytest.param("resmlp_12_224", 32, 64, id="resmlp-tiled", marks=pytest.mark.slow),
    pytest.param("gmlp_ti16_224", 32, 64, id="gmlp-tiled", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "size", "new"), CASES)
def test_timm_loads_our_timm_folder_resized_and_with_other_classes(tmp_path, name, size, new):
    model = _ours(name, size)
    config = _write(model, tmp_path / "base")
    assert config["architecture"] == name and config["model_args"]["img_size"] == size
    _check_timm_loads(model, tmp_path / "base")
    resized = model.resize(new)
    config = _write(resized, tmp_path / "resized")
    assert config["architecture"] == name and config["model_args"]["img_size"] == new
    _check_timm_loads(resized, tmp_path / "resized")


def test_the_config_is_timms(tmp_path):
    model = _ours("mixer_s32_224", 32, class_names=("a", "b", "c"), mean=(0.1, 0.2, 0.3))
    config = _write(model.resize(64), tmp_path / "m")
    assert config["num_classes"] == 3 and config["num_features"] == 512
    assert config["global_pool"] == "avg" and config["label_names"] == ["a", "b", "c"]
    assert config["model_args"] == {"img_size": 64, "mlp_ratio": [2.0, 4.0]}  # D_S 256 × 4
    pre = config["pretrained_cfg"]
    assert (pre["classifier"], pre["first_conv"], pre["num_classes"]) == ("head", "stem.proj", 3)
    assert pre["input_size"] == [3, 64, 64] and pre["mean"] == [0.1, 0.2, 0.3]
    assert (pre["crop_pct"], pre["interpolation"], pre["license"]) == (
        0.875,
        "bicubic",
        "apache-2.0",
    )
    card = (tmp_path / "m" / "README.md").read_text()
    head = card.split("---")[1]
    assert "library_name: timm" in head and "pipeline_tag: image-classification" in head
    assert 'timm.create_model("local-dir:PATH", pretrained=True' in card
    # and timm reads it back as its own: resolve_data_config gives our preprocessing
    theirs = timm.create_model(f"local-dir:{tmp_path / 'm'}", pretrained=True)
    data = timm.data.resolve_data_config({}, model=theirs)
    assert data["input_size"] == (3, 64, 64) and tuple(data["mean"]) == (0.1, 0.2, 0.3)
    assert data["crop_pct"] == 0.875 and data["interpolation"] == "bicubic"


def test_mlp_ratio_gives_back_every_width():
    from mlpmixer.checkpoints.timm_format import mlp_ratio

    for dim in (7, 30, 384, 512, 768, 1000):
        for width in range(1, 3 * dim, max(1, dim // 50)):
            assert int(mlp_ratio(width, dim) * dim) == width, (width, dim)


def test_a_shape_timm_does_not_register_warns_and_says_so(tmp_path):
    model = randomised(mlpmixer.create_model("mixer_t4_28", num_blocks=1, gelu="none"))
    with pytest.warns(UserWarning, match="timm registers no mixer model with patches 4×4"):
        mlpmixer.save_model(model, tmp_path / "m", "timm")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architecture"] == "mixer_custom"
    assert config["model_args"]["patch_size"] == [4, 4] and config["model_args"]["in_chans"] == 1
    # the README's recipe: timm's MlpMixer class with model_args, then the weights
    from safetensors.torch import load_file

    args = {**config["model_args"], "num_classes": config["num_classes"]}
    theirs = timm.models.MlpMixer(**args).eval()
    theirs.load_state_dict(load_file(tmp_path / "m" / "model.safetensors"))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), model(x), atol=2e-5, rtol=0)
    assert (
        'timm.models.MlpMixer(**config["model_args"]' in (tmp_path / "m" / "README.md").read_text()
    )
