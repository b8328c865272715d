"""Issue 16 items 16-19: exit codes, control characters, FIFOs and wording.

Each test failed before: ``convert RUN FIFO --to timm`` exited 1, ``predict`` on an empty folder
1, ``predict | head`` 1; raw ESC/BEL reached the terminal (``info``, eval's class-name warning,
which Python also printed with its source path); FIFOs were "deleted" / "no such file" /
"stopped before its first checkpoint"; and the messages of item 19 were wrong or missing.
FIFOs live in the test's tmp folder; nothing here writes to /dev.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.errors import ConfigError
from mlpmixer.evaluate.eval import check_normalization

CONTROL = "\x1b]0;T\x07"  # an OSC sequence that retitles the terminal, ended by BEL
DIGITS = [f"d{i}" for i in range(10)]


def _mlpmixer(*args: str, cwd: Path | None = None, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpmixer", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=180, **options)  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny digits-sized model whose first class name holds an OSC sequence."""
    torch.manual_seed(0)
    model = create_model(
        "mixer_t2_8", hidden_dim=8, channels_mlp_dim=8, tokens_mlp_dim=4, num_blocks=1,
        num_classes=10, in_chans=1, class_names=[f"a{CONTROL}b", *DIGITS[1:]],
    )  # fmt: skip
    path = tmp_path_factory.mktemp("model") / "m"
    model.save(path)
    return path


def _clean(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\r"), repr(text)


# --- item 16: exit codes ----------------------------------------------------------------------


def test_convert_to_a_fifo_is_a_usage_error(model_dir, tmp_path):
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    result = CliRunner().invoke(cli, ["convert", str(model_dir), str(fifo), "--to", "timm"])
    assert result.exit_code == 2, result.output
    assert "not a regular file" in result.output


def test_predict_with_no_images_at_all_is_bad_input(model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["predict", "--checkpoint", str(model_dir),
                                      "--out-dir", str(tmp_path / "o"), str(tmp_path / "empty")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "directory without image files" in result.stderr


def test_predict_into_a_closed_pipe_is_quiet_and_exits_141(model_dir, tmp_path):
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (8, 8), 3).save(image)
    process = subprocess.Popen(
        [sys.executable, "-m", "mlpmixer", "predict", "--checkpoint", str(model_dir),
         "--out-dir", str(tmp_path / "o"), str(image)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    process.stdout.close()  # the reader is gone before anything is written (`| head -0`)
    stderr = process.stderr.read()
    assert process.wait(timeout=180) == 141, stderr
    assert stderr == ""


# --- item 17: control characters ----------------------------------------------------------------


def test_info_escapes_control_characters_in_the_path(tmp_path):
    result = _mlpmixer("info", f"a{CONTROL}b", cwd=tmp_path)
    assert result.returncode == 2
    _clean(result.stderr)
    assert "a\\x1b]0;T\\x07b" in result.stderr


def test_evals_class_name_warning_is_one_clean_line(model_dir, tmp_path):
    result = _mlpmixer("eval", "--checkpoint", model_dir, "--dataset", "digits",
                       "--out-dir", tmp_path / "o", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "class names" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the model's class names")
    assert "\\x1b" in warnings[0]
    _clean(result.stderr)
    assert ".py:" not in result.stderr and "UserWarning" not in result.stderr


def test_run_refusals_escape_the_folder_name(tmp_path):
    folder = tmp_path / f"x{CONTROL}y"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = _mlpmixer("train", "--steps", "1", "--out", folder)
    assert result.returncode == 2
    _clean(result.stderr)
    assert "x\\x1b]0;T\\x07y" in result.stderr


# --- item 18: FIFOs -----------------------------------------------------------------------------


def test_a_fifo_config_json_is_not_a_regular_file(model_dir, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    os.link(model_dir / "model.safetensors", folder / "model.safetensors")
    os.mkfifo(folder / "config.json")
    result = _mlpmixer("info", folder)
    assert result.returncode == 2
    assert "config.json: not a regular file" in result.stderr


def test_a_fifo_image_is_not_a_regular_file(model_dir, tmp_path):
    os.mkfifo(tmp_path / "x.png")
    result = _mlpmixer("predict", "--checkpoint", model_dir, "--out-dir", tmp_path / "o",
                       tmp_path / "x.png")  # fmt: skip
    assert "x.png: not a regular file" in result.stderr


def test_a_fifo_last_pt_is_not_a_regular_file(tmp_path):
    from mlpmixer.train.run_guard import write_run_id

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("# resolved config of this run\ntrain: {steps: 2}\n")
    write_run_id(run, "0" * 32)
    os.mkfifo(run / "checkpoints" / "last.pt")
    result = _mlpmixer("train", "--resume", run)
    assert result.returncode == 2
    assert "last.pt: not a regular file" in result.stderr


# --- item 19: wording ---------------------------------------------------------------------------


def test_one_channel_mean_is_worded_for_one_channel():
    with pytest.raises(ConfigError) as err:
        check_normalization((0.5, 0.5), (1.0,), 1)
    assert "mean must be 1 finite number," in str(err.value) and "1 or 1" not in str(err.value)


def test_the_seed_limit_is_stated_once():
    too_big = CliRunner().invoke(cli, ["train", "--set", "train.seed=5000000000000000000"])
    assert too_big.exit_code == 2
    assert "2**32 - 1" in too_big.stderr and "2**62" not in too_big.stderr


def test_a_full_disk_in_convert_does_not_mention_resume(model_dir, tmp_path, monkeypatch):
    import mlpmixer.checkpoints as checkpoints

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(checkpoints, "convert", full)
    result = CliRunner().invoke(cli, ["convert", str(model_dir), str(tmp_path / "x.npz")])
    assert result.exit_code == 1
    assert "free space" in result.stderr and "--resume" not in result.stderr


def test_opset_with_a_torchscript_output_is_refused(model_dir, tmp_path):
    out = tmp_path / "m.ts"
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(model_dir), "--output",
                                      str(out), "--opset", "18", "--no-verify"])  # fmt: skip
    assert result.exit_code == 2 and "--opset" in result.output and "ONNX" in result.output
    assert not out.exists()


def test_more_units_than_there_are_is_said(model_dir, tmp_path):
    result = CliRunner().invoke(cli, ["analyze", "tokens", "--checkpoint", str(model_dir),
                                      "--units", "100000", "--out-dir", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--units 100000" in result.stderr and "4 units" in result.stderr
