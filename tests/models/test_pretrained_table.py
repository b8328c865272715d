"""The pretrained table holds every Mixer-family tag timm publishes, with timm's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlpmixer
from mlpmixer.cli import cli
from mlpmixer.models import registry
from mlpmixer.models.pretrained import weights_cfg

TIMM_TAGS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "timm_pretrained_tags.json").read_text()
)
OFFICIAL = "https://storage.googleapis.com/mixer_models/"


def test_every_timm_tag_is_listed_with_timms_source_classes_and_preprocessing():
    ours = {n for n in mlpmixer.list_models(pretrained=True) if ".official_" not in n}
    assert ours == set(TIMM_TAGS)
    for name, timm in TIMM_TAGS.items():
        cfg = weights_cfg(*name.split(".", 1))
        assert cfg["source"] == "hf-hub:" + timm["hf_hub_id"]
        assert cfg["num_classes"] == timm["num_classes"]
        assert list(cfg["mean"]) == timm["mean"] and list(cfg["std"]) == timm["std"]
        assert (cfg["interpolation"], cfg["crop_pct"]) == (timm["interpolation"], timm["crop_pct"])


def test_official_buckets_and_pattern():
    official = mlpmixer.list_models("mixer_*", pretrained=True)
    assert "mixer_b16_224.official_in21k" in official
    assert all(registry.pretrained_source(*n.split(".")).startswith(("hf-hub:timm/", OFFICIAL))
               for n in official)  # fmt: skip
    assert mlpmixer.list_models("resmlp_36*", pretrained=True) == [
        "resmlp_36_224.fb_in1k", "resmlp_36_224.fb_distilled_in1k",
    ]  # fmt: skip
    assert "gmlp_ti16_224" not in {n.split(".")[0] for n in mlpmixer.list_models(pretrained=True)}


def test_create_model_with_a_family_tag_resolves_to_timms_hub_copy(monkeypatch):
    seen = {}

    def fake_load(source, reset_head=False, **overrides):
        seen["source"] = source
        return "model"

    import mlpmixer.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "load_model", fake_load)
    assert mlpmixer.create_model("gmlp_s16_224.ra3_in1k", pretrained=True) == "model"
    assert seen["source"] == "hf-hub:timm/gmlp_s16_224.ra3_in1k"
    mlpmixer.create_model("resmlp_12_224", pretrained=True)  # the default tag: the first
    assert seen["source"] == "hf-hub:timm/resmlp_12_224.fb_in1k"
    with pytest.raises(mlpmixer.ConfigError, match="unknown tag 'nope'"):
        mlpmixer.create_model("gmlp_s16_224.nope")


def test_models_pretrained_command_lists_tags():
    result = CliRunner().invoke(cli, ["models", "--pretrained", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["name"] for r in rows} == set(mlpmixer.list_models(pretrained=True))
    result = CliRunner().invoke(cli, ["models", "--pretrained", "--pattern", "gmixer*"])
    assert "gmixer_24_224.ra3_in1k" in result.output


def test_models_pretrained_table_is_readable_when_piped():
    """Piped (80 columns), no column is cut to '…': every name and source is there whole."""
    result = CliRunner().invoke(cli, ["models", "--pretrained"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for line in ("resmlp_24_224.fb_distilled_in1k", "hf-hub:timm/resmlp_24_224.fb_distilled_in1k"):
        assert line in result.output
