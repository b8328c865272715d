"""Issue 27 item 5: messages that were raw, misleading or missing.

Each test failed before its fix: a newline in ``--out`` was printed raw (so one message read
as two lines), ``predict`` on a corrupt image named ``<_io.BytesIO object at 0x...>`` instead
of the file, ``export --out m.pt2`` let torch's own warnings through, and SIGTERM ended a run
with exit 143 and no word.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mlpmixer import create_model
from mlpmixer.cli import cli


def _mlpmixer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpmixer", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow  # two commands, one a 2-step run: ~15 s on a busy machine
def test_a_newline_in_out_is_escaped_in_every_line(tmp_path):
    taken = tmp_path / "a\nb"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    refused = _mlpmixer("train", "--dataset", "digits", "--steps", "1", "--out", taken)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "a\\nb is not empty" in refused.stderr

    run = _mlpmixer("train", "--dataset", "digits", "--steps", "2", "--set", "train.threads=1",
                    "--out", tmp_path / "c\nd")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "c\nd" / "summary.json").is_file()
    for text in (run.stdout, run.stderr):
        lines = text.splitlines()
        assert not any(line.startswith("d") or line.startswith("d/") for line in lines), text
    assert "c\\nd" in run.stderr and "wrote " in run.stdout and "c\\nd/" in run.stdout


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model(
        "mixer_t2_8", hidden_dim=8, channels_mlp_dim=8, tokens_mlp_dim=4, num_blocks=1,
        num_classes=10, in_chans=1,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("model") / "m"
    model.save(path)
    return path


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\x93\x31garbage" * 10, "its 90 bytes begin with 93 31 67 61"),
        (b"", "it is empty (0 bytes)"),
        (bytes(100), "its 100 bytes are all blank or zero"),
    ],
)
def test_predict_on_a_corrupt_file_names_the_file_not_a_buffer(model_dir, tmp_path, content, said):
    image = tmp_path / "photo.jpg"
    image.write_bytes(content)
    result = CliRunner().invoke(cli, ["predict", "--checkpoint", str(model_dir), str(image)])
    assert result.exit_code == 2, result.output
    assert f"error: cannot read image {image}: cannot identify image file: {said}" in result.output
    assert "BytesIO" not in result.output and "0x" not in result.output


def test_export_to_pt2_prints_no_raw_torch_warnings(model_dir, tmp_path):
    result = _mlpmixer("export", "--checkpoint", model_dir, "--out", tmp_path / "mixer.pt2")
    assert result.returncode == 0, result.stderr
    assert "Unable to load package" not in result.stderr, result.stderr
    assert all(line.startswith("... ") for line in result.stderr.splitlines()), result.stderr
    assert "max |logit difference|" in result.stdout
