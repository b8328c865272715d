"""`mlpmixer.train.run_guard`: which folders a new run may use, and how a run is bound to its
checkpoint (issue 16 items 2-4). The end-to-end refusals are in
tests/reliability/test_adversarial_runs.py; these are the rules and the older runs."""

from __future__ import annotations

import json

import pytest
import torch

from mlpmixer.checkpoints.train_state import load_train_state, save_train_state
from mlpmixer.errors import ConfigError
from mlpmixer.train import train
from mlpmixer.train.run_guard import (
    check_out_dir,
    config_differences,
    config_sha256,
    is_run_dir,
    read_run_id,
)

from .conftest import tiny_config


def test_new_and_empty_folders_are_accepted(tmp_path):
    check_out_dir(tmp_path / "new")
    check_out_dir(tmp_path)  # empty
    (tmp_path / ".lock").write_text("1\n")  # a run's own lock, left by a run killed at once
    check_out_dir(tmp_path)


def test_a_file_and_a_users_folder_are_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(ConfigError, match=r"not empty \(f\) and holds no mlpmixer run"):
        check_out_dir(tmp_path)


def test_a_config_yaml_of_someone_else_is_not_a_run(tmp_path):
    (tmp_path / "config.yaml").write_text("train: {epochs: 3}\n")
    assert not is_run_dir(tmp_path)
    (tmp_path / "config.yaml").write_text("# resolved config of this run (...)\ntrain: {}\n")
    assert is_run_dir(tmp_path)  # written by an mlpmixer before run ids
    (tmp_path / "run.json").write_text('{"format": "other", "run_id": "x"}')
    assert read_run_id(tmp_path) is None


def test_differences_name_nested_keys(tiny):
    a = tiny()
    b = a.override(["optim.lr=0.5", "model.overrides.hidden_dim=32"])
    assert config_differences(a, b) == [
        ("model.overrides.hidden_dim", 16, 32),
        ("optim.lr", 0.003, 0.5),
    ]
    assert config_sha256(a) == config_sha256(a.override(["run.out=elsewhere"]))
    assert config_sha256(a) != config_sha256(b)


def _strip_binding(run_dir) -> None:
    """Make ``run_dir`` look like a run of an mlpmixer before run ids."""
    state = load_train_state(run_dir)
    for key in ("format", "version", "sha256", "run_id", "config_sha256"):
        state.pop(key, None)
    state["config"]["model"]["name"] = "auto"  # older checkpoints kept "auto" unresolved
    save_train_state(run_dir, state)
    (run_dir / "run.json").unlink()


@pytest.fixture
def small_run(tmp_path):
    data = tiny_config(train={"epochs": 1, "steps": 3, "batch_size": 64, "threads": 1})
    data["model"]["name"] = "auto"
    from mlpmixer.train import TrainConfig

    return train(TrainConfig.from_dict(data), overrides=[f"run.out={tmp_path / 'run'}"]).run_dir


def test_a_run_from_before_run_ids_still_resumes_and_gets_one(small_run):
    _strip_binding(small_run)
    result = train(resume=small_run, overrides=["train.steps=5"])
    assert result.summary["steps"] == 5
    run_id = json.loads((small_run / "run.json").read_text())["run_id"]
    assert load_train_state(small_run)["run_id"] == run_id == result.summary["run_id"]


def test_a_deleted_run_json_is_refused(small_run):
    (small_run / "run.json").unlink()
    (small_run / "config.yaml").write_text((small_run / "config.yaml").read_text())  # still ours
    with pytest.raises(ConfigError, match="run.json is missing"):
        train(resume=small_run)


def test_the_checkpoint_carries_the_run_id_and_config_digest(small_run):
    state = load_train_state(small_run)
    summary = json.loads((small_run / "summary.json").read_text())
    assert state["run_id"] == summary["run_id"] == read_run_id(small_run)
    assert state["config_sha256"] == config_sha256(state["config"]) == summary["config_sha256"]
    assert state["config"]["model"]["name"] == "mixer_t2_8"  # "auto" resolved, as config.yaml
    assert isinstance(state["model"]["head.weight"], torch.Tensor)
