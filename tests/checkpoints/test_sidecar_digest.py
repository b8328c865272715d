"""Issue 16 item 6: sidecars and timm's ``mlpmixer_fields`` are bound to weights *and* fields.

Before, editing the mean/std or GELU in ``model.npz.mlpmixer.json`` (or in the metadata of a
timm ``.safetensors``) loaded silently with the edited values (eval top-1 0.10). Now an edit,
fields copied onto other weights, or a sidecar without its digest are refused, like an edited
native ``config.json``.
"""

from __future__ import annotations

import json
import os
import warnings

import pytest
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

import mlpmixer
from mixer_testing import randomised
from mlpmixer.cli import cli

SMALL = dict(
    img_size=8, patch_size=4, in_chans=1, num_classes=3, hidden_dim=8, num_blocks=1,
    tokens_mlp_dim=4, channels_mlp_dim=8, mean=(0.2,), std=(0.3,), crop_pct=1.0,
    class_names=("circle", "square", "star"),
)  # fmt: skip


def _saved(tmp_path, name, fmt=None, gelu="tanh", seed=0):
    model = randomised(mlpmixer.MlpMixer(mlpmixer.MixerConfig(**SMALL, gelu=gelu)), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "holds tensors only", "timm uses erf"
        mlpmixer.save_model(model, tmp_path / name, fmt)
    return model, tmp_path / name


def _edit_sidecar(path, **changes):
    sidecar = path.with_name(path.name + ".mlpmixer.json")
    body = json.loads(sidecar.read_text())
    body.update(changes)
    sidecar.write_text(json.dumps(body))
    return body


@pytest.mark.parametrize("name", ["m.npz", "m.pth"])
@pytest.mark.parametrize(
    "edit", [{"mean": [0.9], "std": [0.1]}, {"gelu": "none"}, {"class_names": ["a", "b", "c"]}]
)
def test_an_edited_sidecar_is_refused(tmp_path, name, edit):
    _, path = _saved(tmp_path, name)
    assert mlpmixer.load_model(path).config.mean == (0.2,)  # untouched: loads
    _edit_sidecar(path, **edit)
    with pytest.raises(mlpmixer.CheckpointError, match="modified after it was written"):
        mlpmixer.load_model(path)


def test_a_sidecar_of_other_weights_is_refused(tmp_path):
    _, path = _saved(tmp_path, "m.npz")
    _, other = _saved(tmp_path, "other.npz", seed=1)
    other.replace(path)  # the old sidecar stays next to other weights: stale
    with pytest.raises(mlpmixer.CheckpointError, match="belongs to other weights"):
        mlpmixer.load_model(path)
    path.with_name("m.npz.mlpmixer.json").unlink()  # the way out the message names
    assert mlpmixer.load_model(path).config.class_names is None


def test_a_sidecar_without_its_digest_is_refused(tmp_path):
    """A version-1 sidecar (or one whose digest was stripped) cannot show it is unedited."""
    _, path = _saved(tmp_path, "m.npz")
    body = _edit_sidecar(path, mlpmixer_sidecar=1)
    with pytest.raises(mlpmixer.CheckpointError, match="version-1 sidecar"):
        mlpmixer.load_model(path)
    body.pop("fields_sha256")
    body["mlpmixer_sidecar"] = 2
    path.with_name("m.npz.mlpmixer.json").write_text(json.dumps(body))
    with pytest.raises(mlpmixer.CheckpointError, match="modified after it was written"):
        mlpmixer.load_model(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [("gelu", None), ("gelu", "relu"), ("mean", "x"), ("crop_pct", 7), ("interpolation", 3)],
)
def test_invalid_values_are_refused_even_with_a_valid_digest(tmp_path, field, value):
    from mlpmixer.checkpoints.sidecar import fields_digest  # new with the digest

    _, path = _saved(tmp_path, "m.npz")
    body = _edit_sidecar(path, **{field: value})
    fields = {k: body[k] for k in ("gelu", "norm_eps", "mean", "std", "interpolation",
                                   "crop_pct", "class_names")}  # fmt: skip
    _edit_sidecar(path, fields_sha256=fields_digest(body["weights_sha256"], fields))
    with pytest.raises(mlpmixer.CheckpointError, match=f"invalid stored setting: {field}"):
        mlpmixer.load_model(path)


def _rewrite_safetensors(path, metadata_changes=None, tensor_change=None):
    with safe_open(path, framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    metadata.update(metadata_changes or {})
    metadata = {k: v for k, v in metadata.items() if v is not None}
    if tensor_change:
        tensors[tensor_change] = tensors[tensor_change] + 1.0
    save_file(tensors, path, metadata=metadata)
    return metadata


@pytest.mark.parametrize("target", ["timm.safetensors", "timm-dir"])
def test_edited_timm_metadata_is_refused(tmp_path, target):
    model, path = _saved(tmp_path, target, "timm", gelu="none")
    weights = path / "model.safetensors" if path.is_dir() else path
    assert mlpmixer.load_model(path).config == model.config
    fields = json.loads(_rewrite_safetensors(weights)["mlpmixer_fields"])
    fields.update(mean=[0.9], std=[0.1])
    _rewrite_safetensors(weights, {"mlpmixer_fields": json.dumps(fields)})
    with pytest.raises(mlpmixer.CheckpointError, match="does not match the file"):
        mlpmixer.load_model(path)


def test_timm_metadata_on_changed_tensors_or_without_digest_is_refused(tmp_path):
    _, path = _saved(tmp_path, "t.safetensors", "timm", gelu="none")
    _rewrite_safetensors(path, tensor_change="head.bias")
    with pytest.raises(mlpmixer.CheckpointError, match="does not match the file"):
        mlpmixer.load_model(path)
    _rewrite_safetensors(path, {"mlpmixer_fields_sha256": None})
    with pytest.raises(mlpmixer.CheckpointError, match="without its digest"):
        mlpmixer.load_model(path)
    _rewrite_safetensors(path, {"mlpmixer_fields": None})  # a plain timm file: timm's defaults
    assert mlpmixer.load_model(path).config.class_names is None


def test_cli_names_the_edited_sidecar_and_exits_2(tmp_path):
    _, path = _saved(tmp_path, "m.npz")
    _edit_sidecar(path, mean=[0.9])
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 2, result.output
    assert "m.npz.mlpmixer.json" in result.output and "modified" in result.output


@pytest.mark.parametrize("kind", ["fifo", "folder", "devnull", "broken_link"])
def test_a_sidecar_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    """Issue 27 item 1: a FIFO, folder or link to /dev/null in the sidecar's place loaded with
    the format's defaults (mean 0.5, no class names), exit 0; a FIFO is never opened."""
    _, path = _saved(tmp_path, "m.npz")
    sidecar = path.with_name("m.npz.mlpmixer.json")
    sidecar.unlink()
    if kind == "fifo":
        os.mkfifo(sidecar)
    elif kind == "folder":
        sidecar.mkdir()
    elif kind == "devnull":
        sidecar.symlink_to("/dev/null")
    else:
        sidecar.symlink_to(tmp_path / "gone.json")
    with pytest.raises(mlpmixer.CheckpointError, match="not a regular file"):
        mlpmixer.load_model(path)
    result = CliRunner().invoke(cli, ["info", "--json", str(path)])
    assert result.exit_code == 2, result.output
    assert "m.npz.mlpmixer.json: not a regular file" in result.output
