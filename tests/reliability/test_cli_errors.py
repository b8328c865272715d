"""CLI errors are one or two lines with the documented exit code; ``--debug`` adds the traceback.

Also the path of an unreadable image met by a DataLoader worker process during training:
PyTorch re-raises it with the worker's whole traceback in the message; the CLI shows only
the original error's line.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import mlpmixer.data.build as build_module
from mlpmixer.cli import cli

TINY = ["--set", "model.overrides.hidden_dim=8", "--set", "model.overrides.num_blocks=1",
        "--set", "model.overrides.tokens_mlp_dim=4", "--set", "model.overrides.channels_mlp_dim=8"]  # fmt: skip
QUIET = ["--set", "train.threads=1", "--set", "run.progress=none", "--set", "run.plot=false"]


def _image_folder(root, per_class: int = 4):
    for part, count in (("train", per_class), ("val", 1)):
        for cls in ("a", "b"):
            (root / part / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (8, 8), 30 * i).save(root / part / cls / f"{i}.png")
    return root


@pytest.fixture
def folder_with_a_bad_file(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "data")
    (root / "train" / "b" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    # skip the mean/std sample, so the bad file is first met by a loader worker in training
    monkeypatch.setattr(build_module, "sample_images", lambda dataset: torch.rand(4, 3, 8, 8))
    return root


def _train_args(data, out):
    return ["train", "--dataset", str(data), "--model", "mixer_t2_8", "--batch-size", "4",
            "--epochs", "1", "--out", str(out), "--set", "model.img_size=8",
            "--set", "data.num_workers=1", *TINY, *QUIET]  # fmt: skip


def test_a_bad_image_in_a_worker_stops_training_with_its_path(tmp_path, folder_with_a_bad_file):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, _train_args(folder_with_a_bad_file, out))
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1, result.output
    assert "cannot read image" in result.output and "2.png" in result.output
    assert "Traceback" not in result.output and "DataLoader worker" not in result.output
    assert not (out / "checkpoints").exists() and not (out / "summary.json").exists()
    debug = CliRunner().invoke(
        cli, ["--debug", *_train_args(folder_with_a_bad_file, tmp_path / "r2")]
    )
    assert debug.exit_code == 2 and "Traceback" in debug.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["info", "/no/such/checkpoint.safetensors"], 2, "/no/such/checkpoint.safetensors"),
        (
            ["eval", "--checkpoint", "/no/ckpt.safetensors", "--dataset", "digits"],
            2,
            "/no/ckpt.safetensors",
        ),
        (
            ["train", "--set", "optim.name=lamb", *QUIET],
            2,
            "optim.name must be 'adamw' | 'adam' | 'sgd'",
        ),
        (["train", "--bogus-flag"], 2, "No such option '--bogus-flag'"),
        (["nonexistent-command"], 2, "No such command"),
    ],
)
def test_usage_and_input_errors_exit_2_in_two_lines(args, code, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert message in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.lower().startswith("error")]
    assert len(errors) == 1
    debug = CliRunner().invoke(cli, ["--debug", *args])
    assert debug.exit_code == code


def test_skip_bad_images_trains_and_reports_how_many_and_which(tmp_path):
    import json

    data = _image_folder(tmp_path / "data")
    (data / "train" / "a" / "empty.png").write_bytes(b"")
    (data / "train" / "b" / "text.jpg").write_text("not a picture")
    args = ["train", "--dataset", str(data), "--model", "mixer_t2_8", "--batch-size", "4",
            "--epochs", "1", "--set", "model.img_size=8", "--set", "data.num_workers=0",
            *TINY, *QUIET]  # fmt: skip
    strict = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "strict")])
    assert strict.exit_code == 2, strict.output
    assert "cannot read image" in strict.output and "--skip-bad-images" in strict.output
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--skip-bad-images"])
    assert result.exit_code == 0, result.output
    assert f"skipped 2 unreadable image(s), listed in {out}/skipped_images.txt" in (
        result.output.replace("\n", "")
    )
    listed = (out / "skipped_images.txt").read_text().splitlines()
    assert sorted(line.split(": ", 1)[0].rsplit("/", 1)[1] for line in listed) == [
        "empty.png",
        "text.jpg",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_images"] == 2
    assert "skip_bad_images: true" in (out / "config.yaml").read_text()  # resume keeps it
