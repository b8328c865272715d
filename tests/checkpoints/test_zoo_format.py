"""The zoo families through the project's machinery: each family's spec (models/<family>.py)
and the official files' format (checkpoints/formats/zoo.py).

Official-layout files are made here from tiny models, wrapped as the official training scripts
wrap them (DeiT's ``{"model": ..., "args": Namespace}``, timm's ``.pth.tar`` with
``state_dict`` / ``state_dict_ema``); the architecture is read back from the shapes alone.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

import mlpmixer
from mlpmixer.checkpoints.model_card import native_card
from mlpmixer.cli import cli
from mlpmixer.errors import CheckpointError
from mlpmixer.models.spec import family_spec

TINY = {
    "vip": {"img_size": 16, "patch_size": 4, "depths": (1, 2), "embed_dims": (8, 12),
            "transitions": (True,), "segment_dims": (4, 2), "mlp_ratios": (3, 2)},
    "cyclemlp": {"img_size": 32, "depths": (1, 1, 2, 1), "embed_dims": (8, 8, 16, 16),
                 "mlp_ratios": (4, 4, 2, 2)},
    "asmlp": {"img_size": 32, "embed_dim": 8, "depths": (1, 1, 2, 1), "mlp_ratio": 2.0},
    "wavemlp": {"img_size": 32, "embed_dims": (8, 8, 16, 16), "depths": (1, 1, 2, 1),
                "norm": "group", "stem_norm": False, "theta_conv": "depthwise"},
    "hiremlp": {"img_size": 32, "embed_dims": (8, 8, 16, 16), "depths": (1, 1, 2, 1),
                "region_size": (2, 3, 2, 2)},
}  # fmt: skip
FAMILIES = sorted(TINY)
NAMES = {"vip": "vip_s7", "cyclemlp": "cyclemlp_b1", "asmlp": "asmlp_tiny",
         "wavemlp": "wavemlp_t", "hiremlp": "hiremlp_tiny"}  # fmt: skip


def _tiny(family: str, **changes):
    spec = family_spec(family)
    torch.manual_seed(0)
    config = spec.config_class(**{**TINY[family], "num_classes": 5, **changes})
    model = spec.model(config).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the defaults
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean") or name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return model


def _images(model) -> torch.Tensor:
    return torch.randn(2, 3, *model.config.img_size, generator=torch.Generator().manual_seed(1))


def _official_file(model, path, wrapper: str = "deit"):
    sd = model.state_dict()
    if wrapper == "deit":
        obj = {"model": sd, "args": argparse.Namespace(model="x", lr=1e-3), "epoch": 299}
    else:  # timm's train.py
        ema = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
        obj = {"state_dict": sd, "state_dict_ema": ema, "args": argparse.Namespace(lr=0.1)}
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_registered_names_build_and_cost_by_the_spec(family):
    name = NAMES[family]
    assert name in mlpmixer.list_models(f"{family}*")
    with torch.device("meta"):
        model = mlpmixer.create_model(name)
    spec = family_spec(family)
    assert spec.model is type(model) and model.config == spec.variants[name]
    built = sum(p.numel() for p in model.parameters())
    assert mlpmixer.models.param_count(model.config) == built == model.num_params()
    assert mlpmixer.models.flops_per_image(model.config) == 2 * spec.macs(model.config)


def test_models_command_lists_the_zoo():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    # the papers' sizes (M): CycleMLP-B1 15.2, Wave-MLP-T 17, Hire-MLP-Tiny 18, AS-MLP-T 28,
    # ViP-Small/7 25
    sizes = {"cyclemlp_b1": 15.2, "wavemlp_t": 17.2, "hiremlp_tiny": 18.0, "asmlp_tiny": 28.3,
             "vip_s7": 25.1}  # fmt: skip
    for name, params in sizes.items():
        assert rows[name]["params_m"] == pytest.approx(params, abs=0.05), name


@pytest.mark.parametrize("family", FAMILIES)
def test_an_official_training_file_loads_with_the_architecture_inferred(family, tmp_path):
    model = _tiny(family)
    wrapper = "timm" if family == "wavemlp" else "deit"
    suffix = ".pth.tar" if wrapper == "timm" else ".pth"
    path = _official_file(model, tmp_path / f"official{suffix}", wrapper)
    size = {"img_size": model.config.img_size}
    loaded = mlpmixer.load_model(path, **size).eval()
    assert type(loaded) is type(model)
    assert loaded.config == model.config.replace(crop_pct=loaded.config.crop_pct)
    images = _images(model)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))  # state_dict, not the EMA
    assert mlpmixer.checkpoints.read_checkpoint(path, **size).format == "zoo"


def test_vip_needs_its_image_size_where_it_is_not_224(tmp_path):
    """ViP's weights do not tell the grid (its C x C permute layers fit any segment count)."""
    path = _official_file(_tiny("vip"), tmp_path / "vip.pth")
    with pytest.raises(CheckpointError, match="segment_dims"):
        mlpmixer.load_model(path)


@pytest.mark.parametrize("family", FAMILIES)
def test_native_round_trip_and_model_card(family, tmp_path):
    model = _tiny(family)
    saved = mlpmixer.save_model(model, tmp_path / "m")
    loaded = mlpmixer.load_model(saved).eval()
    assert loaded.config == model.config
    images = _images(model)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    card = native_card(model.config, str(saved))
    assert family_spec(family).paper.arxiv in card and family in card


def test_a_bare_official_state_dict_loads_too(tmp_path):
    model = _tiny("hiremlp")
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    loaded = mlpmixer.load_model(tmp_path / "sd.pth", img_size=32).eval()
    images = _images(model)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert loaded.network[0][0].norm1.num_batches_tracked.dtype == torch.long


# What a Swin-style training script (AS-MLP's main.py) pickles as its config: yacs 0.1.8's
# CfgNode, a dict subclass keeping its flags, a set and a dict in __dict__. This stand-in
# pickles to the same opcodes; it exists only in the subprocess that writes the test files.
YACS_CONFIG = """
class CfgNode(dict):
    def __init__(self, init_dict=None, new_allowed=False):
        init_dict = init_dict or {}
        super().__init__({k: CfgNode(v) if isinstance(v, dict) else v for k, v in init_dict.items()})
        self.__dict__["__immutable__"] = False
        self.__dict__["__deprecated_keys__"] = set()
        self.__dict__["__renamed_keys__"] = {}
        self.__dict__["__new_allowed__"] = new_allowed

    def freeze(self):
        self.__dict__["__immutable__"] = True
        for value in self.values():
            if isinstance(value, CfgNode):
                value.freeze()
"""

# Writes Swin's save_checkpoint dict around the state dict in argv[1]: genuine.pth,
# ddp.pth (keys saved from DDP, "module."), and hostile.pth whose config also holds an
# object that runs ``touch MARKER`` when unpickled (checked here, where yacs exists).
SWIN_WRITER = """
import os, sys, torch
from yacs.config import CfgNode
state = torch.load(sys.argv[1], weights_only=True)
out, marker = sys.argv[2], sys.argv[3]
params = [torch.nn.Parameter(v.clone()) for v in state.values() if v.is_floating_point()]
optimizer = torch.optim.AdamW(params, lr=5e-4)
sum(p.sum() for p in params).backward()
optimizer.step()
config = CfgNode({
    "BASE": [""], "DATA": {"BATCH_SIZE": 128, "IMG_SIZE": 224, "INTERPOLATION": "bicubic"},
    "MODEL": {"TYPE": "asmlp", "NAME": "asmlp_tiny", "DROP_PATH_RATE": 0.2,
              "AS": {"EMBED_DIM": 96, "DEPTHS": [2, 2, 6, 2], "SHIFT_SIZE": 5, "PATCH_NORM": True}},
    "TRAIN": {"EPOCHS": 300, "BASE_LR": 0.001, "CLIP_GRAD": 5.0,
              "LR_SCHEDULER": {"NAME": "cosine", "DECAY_RATE": 0.1}},
    "AUG": {"MIXUP": 0.8, "CUTMIX_MINMAX": None}, "AMP_OPT_LEVEL": "O1", "SEED": 0,
})
config.freeze()
def swin_save(model_state, cfg, name):
    torch.save({"model": model_state, "optimizer": optimizer.state_dict(),
                "lr_scheduler": {"t_initial": 300, "base_values": [0.001], "noise_range_t": None},
                "max_accuracy": 81.3, "epoch": 299, "config": cfg,
                "amp": {"loss_scaler0": {"loss_scale": 65536.0, "unskipped": 0}}},
               os.path.join(out, name))
swin_save(state, config, "genuine.pth")
swin_save({"module." + k: v for k, v in state.items()}, config, "ddp.pth")
class Touch:
    def __reduce__(self):
        return (os.system, ("touch " + marker,))
hostile = CfgNode({"MODEL": {"NAME": "asmlp_tiny"}})
hostile["MODEL"]["HOOK"] = Touch()
swin_save(state, hostile, "hostile.pth")
torch.load(os.path.join(out, "hostile.pth"), weights_only=False)  # the payload works ...
assert os.path.exists(marker)
os.remove(marker)  # ... and is removed, so that the test sees only what load_model did
"""


@pytest.fixture(scope="module")
def swin_files(tmp_path_factory):
    """An AS-MLP model and its Swin-style training files, written with a yacs CfgNode."""
    folder = tmp_path_factory.mktemp("swin")
    (folder / "yacs").mkdir()
    (folder / "yacs" / "__init__.py").write_text("")
    (folder / "yacs" / "config.py").write_text(YACS_CONFIG)
    model = _tiny("asmlp")
    torch.save(model.state_dict(), folder / "state.pth")
    marker = folder / "marker"
    env = {**os.environ, "PYTHONPATH": str(folder)}
    args = [sys.executable, "-c", SWIN_WRITER, str(folder / "state.pth"), str(folder), str(marker)]
    subprocess.run(args, check=True, env=env, cwd=folder, timeout=120)
    return model, folder, marker


@pytest.mark.parametrize("name", ["genuine.pth", "ddp.pth"])
def test_a_swin_style_file_with_a_yacs_config_loads(swin_files, name):
    """AS-MLP's official files pickle a yacs CfgNode: read without yacs and without running
    anything of the file; the weights are ``model``, config and optimizer state dropped."""
    model, folder, _ = swin_files
    path = folder / name
    with pytest.raises(Exception, match="yacs.config.CfgNode"):  # what weights_only alone says
        torch.load(path, weights_only=True)
    loaded = mlpmixer.load_model(path, img_size=model.config.img_size).eval()
    assert loaded.config == model.config.replace(crop_pct=loaded.config.crop_pct)
    images = _images(model)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert mlpmixer.checkpoints.read_checkpoint(path, img_size=32).format == "zoo"
    assert "yacs" not in sys.modules


def test_the_yacs_config_and_optimizer_state_are_not_kept(swin_files):
    from mlpmixer.checkpoints.formats.zoo import read_training_file

    model, folder, _ = swin_files
    state = read_training_file(folder / "genuine.pth")
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_yacs_config_that_calls_a_function_is_refused_with_nothing_run(swin_files):
    _, folder, marker = swin_files
    with pytest.raises(CheckpointError, match=r"refused") as error:
        mlpmixer.load_model(folder / "hostile.pth", img_size=32)
    assert "system" in str(error.value.__cause__)  # torch's refusal: posix.system (nt on Windows)
    result = CliRunner().invoke(cli, ["info", str(folder / "hostile.pth")])
    assert result.exit_code == 2, result.output
    assert not marker.exists()


class _Hostile:
    def __reduce__(self):
        return (print, ("ran code",))


def test_other_pickled_objects_are_still_refused(tmp_path, capsys):
    model = _tiny("cyclemlp")
    with open(tmp_path / "bad.pth", "wb") as f:  # not a torch zip: the legacy pickle path
        pickle.dump({"model": {}, "args": _Hostile()}, f, protocol=2)
    torch.save({"model": model.state_dict(), "args": _Hostile()}, tmp_path / "bad2.pth")
    for name in ("bad.pth", "bad2.pth"):
        with pytest.raises(CheckpointError, match="refused"):
            mlpmixer.load_model(tmp_path / name)
    assert "ran code" not in capsys.readouterr().out


def test_the_namespace_stand_in_keeps_nothing(tmp_path):
    from mlpmixer.checkpoints.formats.zoo import read_training_file

    model = _tiny("vip")
    path = _official_file(model, tmp_path / "vip.pth")
    state = read_training_file(path)
    assert set(state) == set(model.state_dict())


@pytest.mark.parametrize("family", FAMILIES)
def test_resize_keeps_the_weights_or_refuses_vip(family):
    model = _tiny(family)
    if family == "vip":
        with pytest.raises(mlpmixer.errors.ConfigError, match="family 'vip' cannot be resized"):
            model.resize(32)
        assert "cannot be resized" in native_card(model.config, "x")
        return
    bigger = model.resize(64).eval()
    assert bigger.config.img_size == (64, 64)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(bigger(images), model(images))  # the same weights, any size


@pytest.mark.parametrize("family", FAMILIES)
def test_a_bare_state_dict_keeps_its_settings_in_the_sidecar(family, tmp_path):
    """convert --to state_dict: tensors only, the preprocessing and class names beside."""
    model = _tiny(family, class_names=list("abcde"), crop_pct=0.8)
    with pytest.warns(UserWarning, match="holds tensors only"):
        path = mlpmixer.save_model(model, tmp_path / "sd.pth", "state_dict")
    loaded = mlpmixer.load_model(path, img_size=model.config.img_size).eval()
    assert loaded.config == model.config
    images = _images(model)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_the_published_weights_resolve_to_the_official_releases(monkeypatch):
    import mlpmixer.checkpoints as checkpoints

    tagged = mlpmixer.list_models("*", pretrained=True)
    assert {"cyclemlp_b5.official_in1k", "hiremlp_base.official_in1k",
            "wavemlp_t_dw.official_in1k"} <= set(tagged)  # fmt: skip
    seen = {}
    monkeypatch.setattr(
        checkpoints, "load_model", lambda source, **kw: seen.setdefault("s", source)
    )
    mlpmixer.create_model("cyclemlp_b2", pretrained=True)
    assert (
        seen["s"] == "https://github.com/ShoufaChen/CycleMLP/releases/download/v0.1/CycleMLP_B2.pth"
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_a_bare_state_dict_reads_back_exactly_without_being_told_the_size(family, tmp_path):
    """#28: the sidecar keeps what a zoo config holds beyond the shapes (the image size, drop
    rates, ...), read through the family's config class: ``load_model(path)`` alone gives the
    config back; the warning names what the file alone would lose, judged against what the
    shapes give back (not against MixerConfig's defaults: a zoo's ImageNet mean is no loss)."""
    model = _tiny(family, class_names=list("abcde"), crop_pct=0.8, drop_path_rate=0.1)
    with pytest.warns(UserWarning, match="holds tensors only") as record:
        path = mlpmixer.save_model(model, tmp_path / "sd.pth", "state_dict")
    lost = str(record[0].message).split("reads back: ")[1].split("; copy")[0].split(", ")
    assert sorted(lost) == ["class names", "crop_pct", "drop_path_rate", "img_size"]
    loaded = mlpmixer.load_model(path).eval()
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(_images(model)), model(_images(model)))


def test_an_edited_zoo_sidecar_is_refused(tmp_path):
    """The digest covers the family's kept fields too: a changed img_size is refused."""
    model = _tiny("cyclemlp")
    with pytest.warns(UserWarning, match="holds tensors only"):
        path = mlpmixer.save_model(model, tmp_path / "sd.pth", "state_dict")
    sidecar = tmp_path / "sd.pth.mlpmixer.json"
    data = json.loads(sidecar.read_text())
    assert data["family"] == "cyclemlp" and data["img_size"] == [32, 32]
    sidecar.write_text(json.dumps({**data, "img_size": [64, 64]}))
    with pytest.raises(CheckpointError, match="modified after it was written"):
        mlpmixer.load_model(path)
