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


# The zoo's weights as the official READMEs link them (read at ShoufaChen/CycleMLP 4e062a0,
# ggjy/Hire-Wave-MLP.pytorch 7ef7ddd, houqb/VisionPermutator 2cab2ce, svip-lab/AS-MLP
# dd1eb4f), spelled out whole here; "manual:" = a share page to download from by hand.
HIRE_WAVE = "https://github.com/ggjy/Hire-Wave-MLP.pytorch/releases/download/"
DRIVE = "manual:https://drive.google.com/file/d/{}/view?usp=sharing"
SHAREPOINT = "manual:https://shanghaitecheducn-my.sharepoint.com/:u:/g/personal/liandz_shanghaitech_edu_cn/"  # fmt: skip
ZOO_README_LINKS = {
    "cyclemlp_b1": "https://github.com/ShoufaChen/CycleMLP/releases/download/v0.1/CycleMLP_B1.pth",
    "cyclemlp_b2": "https://github.com/ShoufaChen/CycleMLP/releases/download/v0.1/CycleMLP_B2.pth",
    "cyclemlp_b3": "https://github.com/ShoufaChen/CycleMLP/releases/download/v0.1/CycleMLP_B3.pth",
    "cyclemlp_b4": "https://github.com/ShoufaChen/CycleMLP/releases/download/v0.1/CycleMLP_B4.pth",
    "cyclemlp_b5": "https://github.com/ShoufaChen/CycleMLP/releases/download/v0.1/CycleMLP_B5.pth",
    "hiremlp_tiny": HIRE_WAVE + "log/hire_mlp_tiny.pth",
    "hiremlp_small": HIRE_WAVE + "log/hire_mlp_small.pth",
    "hiremlp_base": HIRE_WAVE + "log/hire_mlp_base.pth",
    "wavemlp_t_dw": HIRE_WAVE + "log-wave/WaveMLP_T_dw.pth.tar",
    "wavemlp_t": HIRE_WAVE + "log-wave/WaveMLP_T.pth.tar",
    "wavemlp_s": HIRE_WAVE + "log-wave/WaveMLP_S.pth.tar",
    "wavemlp_m": HIRE_WAVE + "log-wave/WaveMLP_M.pth.tar",
    "vip_s7": DRIVE.format("1cX6eauDrsGsLSZnqsX7cl0oiKX8Dzv5z"),
    "vip_m7": DRIVE.format("15y5WMypthpbBFdc01E3mJCZit7q0Yn8m"),
    "vip_l7": DRIVE.format("14F5IXGXmB_3jrwK33Efae-WEb5D_G85c"),
    "asmlp_tiny": SHAREPOINT + "Eb2lPJI2BshEjJxf9CmRkCUBnB63Wj25-FVVc6zJvgRg6w?e=dEQd5q",
    "asmlp_small": SHAREPOINT + "EVIbw8xHKk1Aq9MBQL-cRbIBVJA_hJE-HEVNf_GVgkw2iQ?e=QIIp2e",
    "asmlp_base": SHAREPOINT + "EZVBFW_LKctLqgrnnINy88wBRtGFava9wp_65emsvVW2KQ?e=clNjuw",
}
ZOO = ("vip", "cyclemlp", "asmlp", "hiremlp", "wavemlp")


def test_zoo_weights_are_the_links_of_the_official_readmes():
    listed = [n for n in mlpmixer.list_models(pretrained=True) if n.startswith(ZOO)]
    assert {n.split(".")[0] for n in listed} == set(ZOO_README_LINKS)
    for name, link in ZOO_README_LINKS.items():
        assert registry.pretrained_source(name) == link, name
        assert weights_cfg(name, "official_in1k")["num_classes"] == 1000
    # ViP's default_cfgs: crop 0.9 for S and M, 0.875 for L
    assert [weights_cfg(f"vip_{s}7", "official_in1k")["crop_pct"] for s in "sml"] == [0.9, 0.9, 0.875]  # fmt: skip


@pytest.mark.parametrize("name", ["vip_s14", "hiremlp_large", "wavemlp_b"])
def test_zoo_models_without_published_weights_say_so(name):
    with pytest.raises(mlpmixer.ConfigError, match=f"no published weights for '{name}'"):
        mlpmixer.create_model(name, pretrained=True)


@pytest.mark.parametrize("name", [n for n, link in ZOO_README_LINKS.items() if "manual:" in link])
def test_weights_on_share_pages_fail_in_one_line_naming_the_page(name, monkeypatch):
    import mlpmixer.checkpoints as checkpoints

    def no_download(*_args, **_kwargs):
        raise AssertionError("a share page must not be handed to the loader")

    monkeypatch.setattr(checkpoints, "load_model", no_download)
    for call in (lambda: mlpmixer.create_model(name, pretrained=True),
                 lambda: mlpmixer.create_model(f"{name}.official_in1k")):  # fmt: skip
        with pytest.raises(mlpmixer.errors.CheckpointNotFoundError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and caught.value.exit_code == 2
        assert ZOO_README_LINKS[name].removeprefix("manual:") in message
        assert "download the file by hand" in message
        assert "mlpmixer.load_model(PATH)" in message and "--checkpoint PATH" in message
