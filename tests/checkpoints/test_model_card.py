"""Issue 17 item 3: our own hub folder has a real model card and no key timm misreads; a
run's ``model/`` folder has a card with the run's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mlpmixer
from mixer_testing import randomised
from mlpmixer.checkpoints import native


def _metadata(card: str) -> str:
    assert card.startswith("---\n")
    return card.split("---\n")[1]


def test_save_pretrained_writes_a_model_card(tmp_path):
    config = dict(class_names=("cat", "dog", "bird"), num_classes=3, mean=(0.1, 0.2, 0.3))
    model = randomised(mlpmixer.create_model("mixer_t2_8", in_chans=3, **config))
    model.save_pretrained(tmp_path / "repo")
    card = (tmp_path / "repo" / "README.md").read_text()
    meta = _metadata(card)
    for line in ("library_name: mlpmixer", "pipeline_tag: image-classification", "license: "):
        assert line in meta
    assert "[More Information Needed]" not in card
    assert "4 blocks, width C = 128, patches 2×2" in card  # architecture
    assert "**Parameters:** 0.54 M" in card and "**Classes:** 3: cat, dog, bird" in card
    assert "mean [0.1, 0.2, 0.3]" in card and "bicubic" in card  # preprocessing
    assert f'mlpmixer.load_model("{tmp_path / "repo"}")' in card
    assert "## Results" not in card  # not from a run


def test_a_timm_shaped_model_card_says_how_to_load_it_in_timm(tmp_path):
    with torch.device("meta"):
        shapes = mlpmixer.create_model("gmlp_ti16_224", img_size=32, num_classes=2)
    config = shapes.config.replace(tokens_mlp_dim=4)
    state = {k: torch.zeros(v.shape) for k, v in shapes.state_dict().items()}
    model = mlpmixer.MlpFamilyModel.from_state_dict(state, config)
    model.save_pretrained(tmp_path / "g")
    card = (tmp_path / "g" / "README.md").read_text()
    assert "--to timm" in card and 'timm.create_model("local-dir:" + ' in card
    assert "gMLP ([paper](https://arxiv.org/abs/2105.08050))" in card


def test_config_json_has_no_key_timm_reads_as_a_model_name(tmp_path):
    model = mlpmixer.create_model("mixer_t2_8")
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "architecture" not in config and config["format"] == "mlpmixer"


def test_folders_saved_with_the_old_architecture_key_still_load(tmp_path, monkeypatch):
    model = randomised(mlpmixer.create_model("mixer_t2_8"))
    new = native.config_json

    def old_config_json(config):  # what mlpmixer wrote before: "architecture": "mlpmixer"
        return new(config).replace('"format": "mlpmixer"', '"architecture": "mlpmixer"')

    monkeypatch.setattr(native, "config_json", old_config_json)
    model.save(tmp_path / "old")
    model.save(tmp_path / "old.safetensors")
    monkeypatch.undo()
    assert '"architecture": "mlpmixer"' in (tmp_path / "old" / "config.json").read_text()
    for path in (tmp_path / "old", tmp_path / "old.safetensors"):
        loaded = mlpmixer.load_model(path)
        assert loaded.config == model.config
        assert mlpmixer.MlpMixer.from_pretrained(path).config == model.config


def test_user_card_is_kept(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "README.md").write_text("mine")
    mlpmixer.create_model("mixer_t2_8").save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "README.md").read_text() == "mine"


@pytest.mark.slow
def test_a_runs_model_folder_has_a_card_with_its_metrics(tmp_path):
    from mlpmixer.train import TrainConfig, train

    config = TrainConfig.from_dict(
        {
            "model": {
                "name": "mixer_t2_8",
                "overrides": {
                    "hidden_dim": 16,
                    "channels_mlp_dim": 32,
                    "tokens_mlp_dim": 8,
                    "num_blocks": 2,
                },
            },
            "data": {"dataset": "digits"},
            "train": {"steps": 3, "batch_size": 64, "threads": 1},
            "run": {"progress": "none", "plot": False, "out": str(tmp_path / "run")},
        }
    )
    result = train(config)
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "library_name: mlpmixer" in _metadata(card)
    assert "trained on digits" in card and "## Results" in card
    assert f"| test\\_top1 | {result.summary['test_top1']:.4g} |" in card
    assert "steps 3" in card
    assert mlpmixer.load_model(tmp_path / "run").config == result.model.config


def test_push_to_hub_card_names_the_hub_id(tmp_path, monkeypatch):
    """The mixin's push_to_hub saves into a temporary folder: the card must still tell users
    to load the hub id, not that folder. (No network: the two hub calls are replaced.)"""
    import huggingface_hub

    uploaded = {}

    class Repo:
        repo_id = "org/name"

    def upload_folder(self, *, folder_path, **kwargs):
        uploaded["card"] = (Path(folder_path) / "README.md").read_text()
        return "https://hub.invalid/org/name"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, **kw: Repo())
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    model = mlpmixer.create_model("mixer_t2_8")
    model.save_pretrained(tmp_path / "name", repo_id="org/name", push_to_hub=True)
    assert 'mlpmixer.load_model("org/name")' in uploaded["card"]
    assert 'mlpmixer.load_model("org/name")' in (tmp_path / "name" / "README.md").read_text()
