"""Bad ONNX opsets, a full disk, a closed pipe and /dev/null as output: clear, documented ends.

Before: ``--opset 1/5/99999`` was a traceback (or silently opset 18, exit 0); a full disk
during a training checkpoint leaked torch's ``RuntimeError ... unexpected pos`` instead of
the documented "the disk is full; the previous checkpoint is kept"; ``predict | head -1``
printed a "Broken pipe" error; ``--out /dev/null`` was a system error (exit 1), and as root
``bench --out /dev/null`` replaced /dev/null by a regular file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import mlpmixer.checkpoints.train_state as state_module
from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.errors import ConfigError, RunError
from mlpmixer.export import export_model


@pytest.mark.parametrize("opset", [1, 5, 17, 99999])
def test_an_unsupported_opset_is_bad_input(tmp_path, opset):
    model = create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                         channels_mlp_dim=8, num_classes=3)  # fmt: skip
    with pytest.raises(ConfigError, match=f"opset {opset} is not supported.*18"):
        export_model(model, tmp_path / "m.onnx", "onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    """/dev/full fails every write with ENOSPC, as a full disk does."""

    @contextlib.contextmanager
    def full_disk(target):
        yield Path("/dev/full")

    previous = state_module.checkpoint_path(tmp_path)
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"the previous checkpoint")
    monkeypatch.setattr(state_module, "atomic_path", full_disk)
    with pytest.raises(RunError, match="the disk is full; the previous checkpoint is kept"):
        state_module.save_train_state(tmp_path, {"model": {"w": torch.zeros(100_000)}})
    assert previous.read_bytes() == b"the previous checkpoint"


def test_a_closed_stdout_pipe_ends_quietly():
    """``mlpmixer models --json | head -0``: the reader is gone before the first line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mlpmixer", "models", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait()
    assert "error" not in stderr.lower() and "Traceback" not in stderr, stderr


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--out", "SPECIAL"],
        ["eval", "--checkpoint", "x", "--dataset", "digits", "--out", "SPECIAL"],
        ["predict", "x.png", "--checkpoint", "x", "--out", "SPECIAL"],
        ["fewshot", "--checkpoint", "x", "--dataset", "digits", "--out", "SPECIAL"],
        ["bench", "--model", "mixer_t2_8", "--out", "SPECIAL"],
        ["export", "--checkpoint", "x", "--out", "SPECIAL"],
    ],
    ids=lambda a: a[0],
)
def test_a_special_file_as_output_is_a_usage_error(tmp_path, args):
    """A FIFO stands for /dev/null: never the real one, which a broken build running as root
    would replace by a regular file (the old code did, through the atomic rename)."""
    special = tmp_path / "fifo"
    os.mkfifo(special)
    result = CliRunner().invoke(cli, [str(special) if a == "SPECIAL" else a for a in args])
    assert result.exit_code == 2, result.output
    assert str(special) in result.output and "looks like a bug" not in result.output
    assert not special.is_file()


def test_the_library_refuses_a_run_directory_that_is_a_file(tmp_path):
    from mlpmixer.train.lock import run_dir_lock

    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"), run_dir_lock(tmp_path / "file"):
        pass


def test_an_atomic_write_never_replaces_a_special_file(tmp_path):
    from mlpmixer.fileio import atomic_write_text

    special = tmp_path / "fifo"
    os.mkfifo(special)
    with pytest.raises(ConfigError, match="not a regular file"):
        atomic_write_text(special, "x")
    assert not special.is_file()
