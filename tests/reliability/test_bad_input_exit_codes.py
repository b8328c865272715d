"""Bad input is exit 2 with a message naming it, never "this looks like a bug" (exit 1).

Before: ``--device cuda|mps|banana|cuda:abc`` on a CPU-only torch, wrong types of
crop_pct/mean/std/class_names/interpolation in a config.json or timm pretrained_cfg, and a
non-UTF-8 YAML config were tracebacks reported as bugs (or, for a bad interpolation, a
failure of every image at prediction time).
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpmixer import MixerConfig, create_model, load_model
from mlpmixer.cli import cli
from mlpmixer.errors import CheckpointError, ConfigError

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only torch")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m"
    create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                 channels_mlp_dim=8, num_classes=10, in_chans=1).save_pretrained(path)  # fmt: skip
    return path


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", "banana", "cuda:abc"])
@pytest.mark.parametrize("command", ["eval", "predict", "fewshot", "bench"])
def test_a_bad_or_absent_device_is_bad_input(checkpoint, tmp_path, device, command):
    args = {
        "eval": ["eval", "--checkpoint", str(checkpoint), "--dataset", "digits"],
        "predict": ["predict", str(tmp_path), "--checkpoint", str(checkpoint)],
        "fewshot": ["fewshot", "--checkpoint", str(checkpoint), "--dataset", "digits"],
        "bench": ["bench", "--model", "mixer_t2_8", "--no-peak"],
    }[command]
    result = CliRunner().invoke(cli, [*args, "--device", device])
    assert result.exit_code == 2, result.output
    assert repr(device) in result.output and "looks like a bug" not in result.output


def test_train_refuses_an_absent_device_before_any_work(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--device", "mps", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "'mps'" in result.output, result.output


BAD_FIELDS = [
    ("crop_pct", "x"), ("crop_pct", None), ("mean", "abc"), ("mean", [0.5, "a", 0.5]),
    ("std", 5), ("std", [float("nan")]), ("class_names", 7), ("class_names", [[1]] * 10),
    ("interpolation", "lanczos"), ("interpolation", 3),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_a_wrong_preprocessing_type_is_a_config_error_naming_it(field, value):
    with pytest.raises(ConfigError, match=field):
        MixerConfig.from_dict({**MixerConfig().to_dict(), "num_classes": 10, field: value})


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS[:6])
def test_a_wrong_type_in_a_timm_pretrained_cfg_is_bad_input(tmp_path, field, value):
    from safetensors.torch import load_file, save_file

    from mlpmixer.checkpoints import save_model

    folder = tmp_path / "timm"
    save_model(create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                            channels_mlp_dim=8, num_classes=10, gelu="none"), folder, "timm")  # fmt: skip
    # as timm writes it: no mlpmixer settings in the weights' metadata, which would win over
    # (and so hide) the pretrained_cfg of config.json
    weights = folder / "model.safetensors"
    save_file(load_file(weights), weights, metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"][field] = value
    (folder / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(cli, ["info", str(folder)])
    assert result.exit_code == 2, result.output
    assert field in result.output and "looks like a bug" not in result.output


def test_interpolation_in_model_overrides_is_checked_when_training_starts(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["train", "--set", "model.overrides.interpolation=lanczos", "--out", str(out)]
    )
    assert result.exit_code == 2 and "interpolation" in result.output, result.output
    assert not (out / "checkpoints").exists()


def test_a_non_utf8_yaml_config_is_bad_input(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_bytes(b"train:\n  epochs: 3\n# caf\xe9\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(config)])
    assert result.exit_code == 2 and "not UTF-8" in result.output, result.output


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["mean", "std", "crop_pct", "interpolation", "class_names"]),
    value=st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
        st.lists(st.one_of(st.floats(), st.text(max_size=3), st.integers()), max_size=4),
    ),
)  # fmt: skip
def test_fuzz_config_json_preprocessing_fields(field, value):
    """Any value either builds a config or is a ConfigError: never another exception."""
    with contextlib.suppress(ConfigError):
        MixerConfig.from_dict({**MixerConfig().to_dict(), "num_classes": 3, field: value})


def test_a_checkpoint_with_a_bad_field_loads_as_bad_input(checkpoint, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    text = (copy / "config.json").read_text().replace('"bicubic"', '"lanczos"')
    (copy / "config.json").write_text(text)
    with pytest.raises((CheckpointError, ConfigError)):
        load_model(copy)
