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
    assert config["format"] == "mlpmixer" and "architecture" not in config  # timm reads that
    assert config["class_names"] == ["cat", "dog", "bird"]
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


def test_unknown_config_key_is_named(tmp_path, monkeypatch):
    from mlpmixer.checkpoints import native as serialization

    original = serialization.config_json
    monkeypatch.setattr(  # a config written (and checksummed) with a key this version lacks
        serialization, "config_json", lambda c: original(c).replace("{", '{"depth": 3,', 1)
    )
    MlpMixer(CONFIG).save(tmp_path / "m")
    monkeypatch.undo()
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


def test_old_config_json_with_grad_checkpointing_still_loads(tmp_path, monkeypatch):
    from mlpmixer.checkpoints import native

    original = native.config_json
    monkeypatch.setattr(  # written (and checksummed) as older versions did, with the switch
        native, "config_json", lambda c: original(c).replace("{", '{"grad_checkpointing": true,', 1)
    )
    model = MlpMixer(CONFIG)
    model.save(tmp_path / "m")
    monkeypatch.undo()
    assert json.loads((tmp_path / "m" / "config.json").read_text())["grad_checkpointing"] is True
    loaded = mlpmixer.load_model(tmp_path / "m")
    assert not loaded.grad_checkpointing
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# Issue 9 item 1: config.json is part of the checksum; folders are written as a whole.


def _resave_weights_with_metadata(weights, change):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(weights, framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors, metadata = change(tensors, metadata)
    save_file(tensors, weights, metadata=metadata)


@pytest.mark.parametrize("damage", ["missing", "not json", "edited", "other model's"])
def test_folder_with_a_bad_config_is_refused(tmp_path, damage):
    MlpMixer(CONFIG).save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    if damage == "missing":
        path.unlink()
        match = "without config.json"
    elif damage == "not json":
        path.write_text(path.read_text()[:40])
        match = "not valid JSON"
    elif damage == "edited":
        path.write_text(path.read_text().replace('"gelu": "none"', '"gelu": "tanh"'))
        match = "config was modified"
    else:
        MlpMixer(CONFIG.replace(mean=(0.1,))).save(tmp_path / "other")
        path.write_text((tmp_path / "other" / "config.json").read_text())
        match = "config was modified"
    with pytest.raises(mlpmixer.CheckpointError, match=match):
        mlpmixer.load_model(tmp_path / "m")
    with pytest.raises(mlpmixer.CheckpointError, match=match):
        MlpMixer.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("target", ["dir", "one.safetensors"])
@pytest.mark.parametrize("stripped", ["sha256", "config_sha256"])
def test_checksum_is_mandatory(tmp_path, target, stripped):
    MlpMixer(CONFIG).save(tmp_path / target)
    weights = tmp_path / target / "model.safetensors" if target == "dir" else tmp_path / target

    def zero_and_strip(tensors, metadata):
        del metadata[stripped]
        return {k: torch.zeros_like(v) for k, v in tensors.items()}, metadata

    _resave_weights_with_metadata(weights, zero_and_strip)
    with pytest.raises(mlpmixer.CheckpointError, match=f"without its {stripped} checksum"):
        mlpmixer.load_model(tmp_path / target)


def test_single_file_without_config_is_not_read_as_a_state_dict(tmp_path):
    MlpMixer(CONFIG).save(tmp_path / "one.safetensors")

    def drop_config(tensors, metadata):
        del metadata["config"]
        return tensors, metadata

    _resave_weights_with_metadata(tmp_path / "one.safetensors", drop_config)
    with pytest.raises(mlpmixer.CheckpointError, match="without an mlpmixer config"):
        mlpmixer.load_model(tmp_path / "one.safetensors")


def test_save_pretrained_replaces_a_folder_atomically(tmp_path, monkeypatch):
    """A failure while writing leaves the previous folder whole; no config.json is deleted first."""
    from mlpmixer.checkpoints import native as serialization

    old = randomised(MlpMixer(CONFIG))
    old.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("mine")

    save_file = serialization.save_file

    def killed_after_the_weights(*args, **kwargs):
        save_file(*args, **kwargs)
        raise KeyboardInterrupt  # a kill between the weights and the config

    new = randomised(MlpMixer(CONFIG.replace(mean=(0.3,))))
    monkeypatch.setattr(serialization, "save_file", killed_after_the_weights)
    with pytest.raises(KeyboardInterrupt):
        new.save_pretrained(tmp_path / "m")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    loaded = mlpmixer.load_model(tmp_path / "m")
    assert loaded.config.mean == (0.25,)
    new.save_pretrained(tmp_path / "m")
    assert mlpmixer.load_model(tmp_path / "m").config.mean == (0.3,)
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"  # other files are kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# Issue 9 item 11: loading builds on the meta device instead of initialising randomly.


def _init_only_on_meta(monkeypatch):
    from mlpmixer.models import base  # the family base calls init_weights

    real_init = base.init_weights

    def checked(model, *args):
        real = [name for name, p in model.named_parameters() if not p.is_meta]
        assert not real, f"random init of weights that the checkpoint overwrites: {real[:3]}"
        real_init(model, *args)

    monkeypatch.setattr(base, "init_weights", checked)


@pytest.mark.parametrize("how", ["load_model", "from_pretrained", "reset_head", "resize"])
def test_loading_skips_random_init_and_gives_real_owned_weights(tmp_path, monkeypatch, how):
    model = randomised(MlpMixer(CONFIG))
    model.save(tmp_path / "m")
    _init_only_on_meta(monkeypatch)
    if how == "load_model":
        loaded = mlpmixer.load_model(tmp_path / "m")
    elif how == "from_pretrained":
        loaded = MlpMixer.from_pretrained(tmp_path / "m")
    elif how == "reset_head":
        loaded = MlpMixer.from_pretrained(tmp_path / "m", num_classes=5, reset_head=True)
        assert torch.count_nonzero(loaded.head.weight) == 0  # a real zero head, not meta
    else:
        loaded = model.resize((24, 32))
        loaded.stem.proj.weight.data.zero_()  # must not alias the source model
        assert torch.count_nonzero(model.stem.proj.weight) > 0
    for name, p in loaded.named_parameters():
        assert not p.is_meta and p.device.type == "cpu", name
        assert p.dtype == torch.float32 and p.requires_grad, name
    if how in ("load_model", "from_pretrained"):
        x = torch.randn(2, 1, 12, 16)
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(x), model.eval()(x), atol=0, rtol=0)


# Issue 9 item 6: absurd sizes in a config are refused before the model is built.


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_blocks": 10_000_000}, "num_blocks=10000000 is more than the limit of 1024"),
        ({"hidden_dim": 10**9}, r"e\+1\d parameters \(hidden_dim=1000000000"),
        ({"channels_mlp_dim": 10**12}, r"channels_mlp_dim=1000000000000.*limit of 1e\+10"),
        ({"img_size": [2**20, 2**20]}, r"parameters .* \d{10,} tokens"),
        ({"in_chans": 10**9, "mean": [0.5], "std": [0.5]}, r"in_chans=1000000000"),
    ],
)
def test_absurd_model_sizes_in_config_json_are_refused_before_building(
    tmp_path, monkeypatch, change, message
):
    from mlpmixer.checkpoints import native as serialization

    original = serialization.config_json

    def hostile(config):  # a config.json edited and re-checksummed
        data = json.loads(original(config))
        data.update(change)
        return json.dumps(data)

    monkeypatch.setattr(serialization, "config_json", hostile)
    MlpMixer(CONFIG).save(tmp_path / "m")
    monkeypatch.undo()
    with pytest.raises(mlpmixer.ConfigError, match=message):
        mlpmixer.load_model(tmp_path / "m")
    with pytest.raises(mlpmixer.ConfigError, match=message):
        MixerConfig.from_dict({k: v for k, v in change.items() if k not in ("mean", "std")})


def test_saving_through_a_link_to_a_folder_keeps_the_link(tmp_path):
    MlpMixer(CONFIG).save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    MlpMixer(CONFIG.replace(mean=(0.3,))).save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink()
    assert mlpmixer.load_model(tmp_path / "real").config.mean == (0.3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
