"""The project's own format: save -> load gives identical outputs; hub layout; atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

import mlpmixer
from mixer_testing import randomised
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.fileio import atomic_path

CONFIG = MixerConfig(
    img_size=(12, 16), patch_size=4, in_chans=1, num_classes=3, hidden_dim=16, num_blocks=2,
    tokens_mlp_dim=8, channels_mlp_dim=32, gelu="none", drop_path_rate=0.1,
    mean=(0.25,), std=(0.5,), class_names=("cat", "dog", "bird"),
)  # fmt: skip


@pytest.mark.parametrize("target", ["dir", "one.safetensors"])
def test_save_load_round_trip_is_exact(tmp_path, target):
    model = randomised(MlpMixer(CONFIG))
    model.save(tmp_path / target)
    loaded = mlpmixer.load_model(tmp_path / target)
    assert loaded.config == model.config
    x = torch.randn(3, 1, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x), atol=0, rtol=0)


def test_hub_layout_via_mixin(tmp_path):
    model = randomised(MlpMixer(CONFIG))
    model.save_pretrained(tmp_path / "repo")
    files = sorted(p.name for p in (tmp_path / "repo").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert config["architecture"] == "mlpmixer" and config["class_names"] == ["cat", "dog", "bird"]
    loaded = MlpMixer.from_pretrained(tmp_path / "repo")
    for (name, a), (_, b) in zip(
        loaded.state_dict().items(), model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    tuned = MlpMixer.from_pretrained(tmp_path / "repo", num_classes=5, reset_head=True)
    assert tuned.config.num_classes == 5 and tuned.config.class_names is None


def test_config_after_reset_and_resize_is_what_is_saved(tmp_path):
    model = MlpMixer(CONFIG)
    model.reset_classifier(4)
    model = model.resize((24, 32))
    model.save_pretrained(tmp_path / "r")
    loaded = MlpMixer.from_pretrained(tmp_path / "r")
    assert loaded.config.num_classes == 4 and loaded.config.img_size == (24, 32)
    assert loaded.config.tokens_mlp_dim == 32


def test_unsupported_format_version_is_named(tmp_path):
    MlpMixer(CONFIG).save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["format_version"] = 99
    path.write_text(json.dumps(config))
    with pytest.raises(mlpmixer.CheckpointError, match="format_version 99 is not supported"):
        mlpmixer.load_model(tmp_path / "m")


def test_unknown_config_key_is_named(tmp_path):
    MlpMixer(CONFIG).save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["depth"] = 3
    path.write_text(json.dumps(config))
    with pytest.raises(mlpmixer.ConfigError, match=r"unknown MixerConfig key\(s\) \['depth'\]"):
        mlpmixer.load_model(tmp_path / "m")


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"previous")
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the new")
        raise OSError("disk full")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"]  # no temporary left


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600


def test_grad_checkpointing_is_a_runtime_switch_not_saved(tmp_path):
    model = MlpMixer(CONFIG)
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing and "grad_checkpointing" not in model.config.to_dict()
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "grad_checkpointing" not in saved
    assert not MlpMixer.from_pretrained(tmp_path / "m").grad_checkpointing
    assert model.resize((24, 32)).grad_checkpointing  # kept on the module across resize


def test_old_config_json_with_grad_checkpointing_still_loads(tmp_path):
    model = MlpMixer(CONFIG)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "grad_checkpointing": True}))
    loaded = mlpmixer.load_model(tmp_path / "m")
    assert not loaded.grad_checkpointing
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
