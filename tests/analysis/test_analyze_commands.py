"""`mlpmixer analyze tokens|cka|permutation`: JSON and PNG written, numbers consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mixer_testing import randomised
from mlpmixer import create_model, save_model
from mlpmixer.analysis.token_mixing import token_mixing_units
from mlpmixer.cli import cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = randomised(create_model("mixer_t2_8", num_blocks=3))
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(path)
    return path, model


def _png_ok(path):
    with Image.open(path) as png:
        assert png.format == "PNG" and min(png.size) > 50
        assert path.stat().st_size < 300_000


@pytest.mark.parametrize("fmt", ["native", "official"])
def test_tokens_command(checkpoint, tmp_path, fmt):
    path, model = checkpoint
    if fmt == "official":
        path = save_model(model, tmp_path / "tiny.npz")  # Google's layout: weights only
    args = ["analyze", "tokens", "--checkpoint", str(path), "--blocks", "1,3", "--units", "8"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [b["block"] for b in data["blocks"]] == [0, 2]
    first = data["blocks"][0]
    assert sorted(first["order"]) == list(range(64))  # all D_S units, in display order
    units = token_mixing_units(model, 0)
    assert first["grid"] == [4, 4] and units.shape == (64, 4, 4)
    _png_ok(tmp_path / "tokens.png")
    assert json.loads((tmp_path / "tokens.json").read_text()) == data
    bad = CliRunner().invoke(cli, [*args[:4], "--blocks", "0", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "numbered from 1" in bad.output


def test_cka_command_on_a_dataset_and_on_image_files(checkpoint, tmp_path):
    path, _ = checkpoint
    base = ["analyze", "cka", "--checkpoint", str(path), "--out", str(tmp_path), "--json"]
    result = CliRunner().invoke(cli, [*base, "--dataset", "digits", "--num-images", "64"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    matrix = np.array(data["cka"])
    assert data["num_images"] == 64 and matrix.shape == (4, 4)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
    _png_ok(tmp_path / "cka.png")
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "junk.png").write_bytes(b"junk")  # skipped: CKA uses the readable images
    files = CliRunner().invoke(cli, [*base, "--images", str(folder), "--checkpoint-b", str(path)])
    assert files.exit_code == 0, files.output
    across = json.loads(files.output)
    assert across["num_images"] == 5
    np.testing.assert_allclose(np.diag(np.array(across["cka"])), 1.0, atol=1e-9)


@pytest.mark.slow
def test_permutation_command(tmp_path):
    args = ["analyze", "permutation", "--dataset", "digits", "--epochs", "1", "--cnn-width", "4", "--limit", "300",
            "--set", "model.overrides.hidden_dim=16", "--set", "model.overrides.num_blocks=1", "--set", "model.overrides.channels_mlp_dim=32",
            "--set", "model.overrides.tokens_mlp_dim=8", "--out", str(tmp_path), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["accuracy"]) == {"mixer", "cnn"}
    assert data["exact"]["same_predictions"] and data["exact"]["max_abs_logit_diff"] < 1e-10
    assert data["config"]["hidden_dim"] == 16 and data["num_test"] == 300
    _png_ok(tmp_path / "permutation.png")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("model.overrides.hidden_dim=[&a 8, *a]", "YAML aliases are not allowed"),
        ("model.overrides.hidden_dim=" + "[" * 40 + "]" * 40, "YAML nested more than 32 levels"),
    ],
)
def test_permutation_set_values_are_read_with_the_bounded_yaml_loader(tmp_path, value, message):
    """`analyze permutation --set` read its values with yaml.safe_load, which expands aliases
    (a 440-byte alias bomb hangs it); like every other --set it now refuses them (exit 2)."""
    args = ["analyze", "permutation", "--limit", "20", "--epochs", "1", "--set", value,
            "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "hidden_dim" in result.output


def test_tokens_and_cka_write_next_to_the_checkpoint_not_to_results(
    checkpoint, tmp_path, monkeypatch
):
    """Before: every analysis wrote ./results/analyze/ wherever it was run (#18, item 6)."""
    path, _ = checkpoint
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    tokens = CliRunner().invoke(cli, ["analyze", "tokens", "--checkpoint", str(path)])
    assert tokens.exit_code == 0, tokens.output
    cka = ["analyze", "cka", "--checkpoint", str(path), "--dataset", "digits", "--num-images", "16"]
    result = CliRunner().invoke(cli, [*cka, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (path.parent / "analyze-tokens" / "tokens.png").is_file()
    assert (path.parent / "analyze-cka" / "cka.json").is_file()
    assert not (work / "results").exists()


def test_permutation_takes_a_device_and_threads_and_records_the_device(tmp_path):
    import torch

    before = torch.get_num_threads()
    args = ["analyze", "permutation", "--limit", "64", "--epochs", "1", "--exact-epochs", "1",
            "--set", "model.overrides.hidden_dim=8", "--set", "model.overrides.num_blocks=1",
            "--set", "model.overrides.tokens_mlp_dim=8", "--set", "model.overrides.channels_mlp_dim=8",
            "--cnn-width", "4", "--device", "cpu", "--threads", "1", "--out", str(tmp_path), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "permutation.json").read_text())
    assert data["settings"]["device"] == "cpu"
    assert data["exact"]["max_abs_logit_diff"] < 1e-10
    assert torch.get_num_threads() == before  # --threads applies to the command only
