"""Long commands report progress on stderr, a line per phase; stdout (--json) stays clean.

Before: ``bench`` (the README's B/16 command: 7+ minutes), ``analyze permutation`` and big
loads printed nothing until the end.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlpmixer import create_model, load_model
from mlpmixer.cli import cli

FORCED = {"MLPMIXER_PROGRESS": "1"}


def test_bench_reports_each_phase_on_stderr_and_keeps_json_on_stdout():
    args = ["bench", "--model", "mixer_t2_8", "--mode", "infer", "--batch-size", "2",
            "--warmup", "0", "--repeats", "1", "--min-time", "0", "--no-latency", "--json",
            "--no-peak"]  # fmt: skip
    result = CliRunner(env=FORCED).invoke(cli, [*args, "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "mixer_t2_8"
    lines = result.stderr.splitlines()
    assert any("building mixer_t2_8" in line for line in lines), lines
    assert any("timing infer" in line for line in lines), lines


@pytest.mark.slow
def test_permutation_reports_each_training_on_stderr(tmp_path):
    args = ["analyze", "permutation", "--limit", "20", "--epochs", "1", "--exact-epochs", "0",
            "--cnn-width", "4", "--out", str(tmp_path), "--json"]  # fmt: skip
    result = CliRunner(env=FORCED).invoke(cli, args)
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)
    trainings = [line for line in result.stderr.splitlines() if "training" in line]
    assert len(trainings) == 6, result.stderr  # 2 models x 3 variants


def test_no_progress_lines_when_silenced():
    args = ["bench", "--model", "mixer_t2_8", "--mode", "infer", "--batch-size", "2",
            "--warmup", "0", "--repeats", "1", "--min-time", "0", "--no-latency", "--no-peak",
            "--json", "--threads", "1"]  # fmt: skip
    result = CliRunner(env={"MLPMIXER_PROGRESS": "0"}).invoke(cli, args)
    assert result.exit_code == 0 and result.stderr == "", result.stderr


def test_load_model_logs_its_phases(tmp_path, caplog):
    path = tmp_path / "m"
    create_model("mixer_t2_8", num_blocks=1, hidden_dim=8).save_pretrained(path)
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        load_model(path)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("reading") for m in messages), messages
    assert any(m.startswith("building the model") for m in messages), messages


@pytest.mark.slow
def test_activation_memory_script_reports_each_model_on_stderr():
    script = Path(__file__).parents[1] / "benchmarks" / "activation_memory.py"
    result = subprocess.run(
        [sys.executable, str(script), "--models", "mixer_t2_8", "--dtype", "fp32", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    json.loads(result.stdout)
    assert "measuring mixer_t2_8" in result.stderr
