"""`mlpmixer export`: format from the flag or suffix, verification report, bad suffix."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mixer_testing import randomised
from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.export import run_exported


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = randomised(create_model("mixer_t2_8", num_blocks=1))
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(path)
    return path, model


def test_export_command_writes_the_file_and_a_report(checkpoint, tmp_path):
    path, model = checkpoint
    target = tmp_path / "tiny.ts"  # torchscript, from the suffix
    result = CliRunner().invoke(
        cli, ["export", "--checkpoint", str(path), "--out", str(target), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["format"] == "torchscript" and report["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "tiny.ts.json").read_text())["path"] == str(target)
    images = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(run_exported(target, "torchscript", images), model(images))


def test_export_command_refuses_an_unknown_suffix(checkpoint, tmp_path):
    path, _ = checkpoint
    result = CliRunner().invoke(
        cli, ["export", "--checkpoint", str(path), "--out", str(tmp_path / "m.bin")]
    )
    assert result.exit_code == 2 and "cannot tell the export format" in result.output


def test_export_writes_next_to_the_checkpoint_by_default(checkpoint, tmp_path, monkeypatch):
    """Before: `export` without --out wrote ./results/export/ wherever it was run."""
    path, _ = checkpoint
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["export", "--checkpoint", str(path), "--format", "torchscript"]
    )
    assert result.exit_code == 0, result.output
    assert (path.parent / "export" / "tiny.ts").is_file()
    assert not (tmp_path / "results").exists()
