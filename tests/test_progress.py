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
    for model in ("mixer", "cnn"):  # 2 models x 3 variants, each announced
        for variant in ("original", "patch+pixel", "global"):
            assert f"(training {model} on {variant} images)" in result.stderr, result.stderr


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


# --- issue 18 item 5: progress whenever stdout is not --json, at least every ~10 s ---------


def test_a_ticker_reports_rate_and_eta_and_beats_during_a_long_step(caplog):
    import time

    from mlpmixer.progress import Ticker

    log = logging.getLogger("mlpmixer.test")
    with (
        caplog.at_level(logging.INFO, logger="mlpmixer"),
        Ticker(log, "work", total=4, interval=0.3) as ticker,
    ):
        ticker.advance(detail="first", force=True)
        time.sleep(1.0)  # one long step: the heartbeat speaks meanwhile
        ticker.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("work: step 1/4 (25%) (first), ") and "ETA" in lines[0]
    assert any("working on step 2" in line for line in lines[1:]), lines


def test_training_reports_progress_on_a_redirected_stderr(tmp_path):
    """Before: a redirected `mlpmixer train` printed nothing but the first line until the end."""
    args = ["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--set", "train.threads=1",
            "--set", "model.overrides.num_blocks=1", "--set", "run.plot=false",
            "--set", "train.log_every_steps=5"]  # fmt: skip
    result = CliRunner().invoke(cli, args)  # stderr is not a terminal here
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if "training: step" in line]
    assert steps and all("ETA" in line and "steps/s" in line for line in steps), result.stderr
    assert "epoch 1/1" in steps[0]
    quiet = CliRunner().invoke(cli, [*args[:4], str(tmp_path / "run2"), *args[5:], "--json"])
    assert quiet.exit_code == 0 and "training: step" not in quiet.stderr
    json.loads(quiet.stdout)


def test_a_stopped_permutation_study_keeps_what_finished(tmp_path, monkeypatch):
    """Before: Ctrl-C during `analyze permutation` (10+ minutes) left nothing on disk."""
    from mlpmixer.analysis import order_study

    calls = []
    real_fit = order_study.fit

    def fit_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(order_study, "fit", fit_then_stop)
    args = ["analyze", "permutation", "--limit", "100", "--epochs", "1", "--exact-epochs", "0",
            "--cnn-width", "4", "--set", "model.overrides.num_blocks=1", "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 130, result.output
    data = json.loads((tmp_path / "permutation.json").read_text())
    assert data["partial"] is True and data["complete"] is False
    assert list(data["accuracy"]["mixer"]) == ["original", "patch+pixel"]
    assert data["accuracy"]["cnn"] == {}
    assert (tmp_path / "permutation.png").is_file()
    assert "stopped: the 2 finished training(s) are in" in result.stderr


def test_permutation_with_a_tiny_limit_warns(tmp_path):
    args = ["analyze", "permutation", "--limit", "1", "--epochs", "1", "--exact-epochs", "0",
            "--cnn-width", "4", "--set", "model.overrides.num_blocks=1", "--out", str(tmp_path),
            "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "warning: only 1 test image(s) for 10 classes" in result.stderr


def test_a_heartbeat_speaks_while_a_phase_is_long(caplog):
    import time

    from mlpmixer.progress import PROGRESS, Heartbeat

    log = logging.getLogger("mlpmixer.test")
    with caplog.at_level(logging.INFO, logger="mlpmixer"), Heartbeat(log, "bench", 0.3):
        log.info("timing infer", extra=PROGRESS)
        time.sleep(1.0)
    assert "bench: still timing infer (elapsed" in caplog.text


def test_a_heartbeat_names_the_phase_not_the_previous_beat(caplog):
    """Each beat named the last progress line, which after the first beat was that beat:
    'bench: still bench: still bench: still timing train ...' (mlpmixer bench, issue 18)."""
    import time

    from mlpmixer.progress import PROGRESS, Heartbeat

    log = logging.getLogger("mlpmixer.test")
    with caplog.at_level(logging.INFO, logger="mlpmixer"), Heartbeat(log, "bench", 0.2):
        log.info("timing train", extra=PROGRESS)
        time.sleep(1.0)
    beats = [r.getMessage() for r in caplog.records if "still" in r.getMessage()]
    assert len(beats) >= 2, beats
    assert all(b.startswith("bench: still timing train (elapsed") for b in beats), beats


@pytest.fixture
def every_unit(monkeypatch):
    """A progress line for every unit of work (the 10-second interval made 0)."""
    import mlpmixer.progress

    monkeypatch.setattr(mlpmixer.progress, "INTERVAL_S", 0.0)


def test_eval_predict_fewshot_cka_and_export_report_progress(every_unit, tmp_path):
    """Before: eval, predict, fewshot, analyze cka and export were silent until the end
    (an ImageNet evaluation on a CPU: an hour without a line)."""
    from PIL import Image

    path = tmp_path / "m"
    create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, num_classes=10).save_pretrained(path)
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(tmp_path / f"{i}.png")
    ckpt = ["--checkpoint", str(path)]
    commands = {
        "evaluating: batch 1/": ["eval", *ckpt, "--dataset", "digits", "--batch-size", "512"],
        "predicting: image 2/3": [
            "predict",
            *ckpt,
            *(str(tmp_path / f"{i}.png") for i in range(3)),
            "--batch-size",
            "2",
        ],
        "features of the train images: batch 1/": [
            "fewshot",
            *ckpt,
            "--dataset",
            "digits",
            "--shots",
            "1",
            "--seeds",
            "1",
        ],
        "CKA: activations of every layer: batch 1/": [
            "analyze",
            "cka",
            *ckpt,
            "--dataset",
            "digits",
            "--num-images",
            "8",
        ],
        "checking it against PyTorch": ["export", *ckpt, "--format", "torchscript"],
    }
    for expected, args in commands.items():
        result = CliRunner(env=FORCED).invoke(cli, [*args, "--out", str(tmp_path / args[0])])
        assert result.exit_code == 0, (args, result.output)
        assert expected in result.stderr, (args, result.stderr)
        assert "batchs" not in result.stderr


def test_a_stream_of_unknown_length_is_counted_without_share_or_eta(every_unit, caplog):
    from mlpmixer.progress import counted

    stream = (i for i in range(3))
    with caplog.at_level(logging.INFO, logger="mlpmixer"):
        assert list(counted(stream, logging.getLogger("mlpmixer.t"), "x")) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("x: ")]
    assert lines[-1].startswith("x: batch 3, ") and "batches/" in lines[-1], lines
    assert not any("%" in line or "ETA" in line for line in lines), lines


# --- issue 28 item 3: one drawing library (rich) for the training bar ---------------------


def _bar_after_two_steps(monkeypatch, columns: int) -> list[str]:
    import io

    from mlpmixer.train.logs import Progress

    monkeypatch.setenv("COLUMNS", str(columns))  # the width rich gives a stream
    stream = io.StringIO()
    progress = Progress("bar", 5, stream=stream)
    progress.start_run(total_steps=4, done=1, epochs=2)  # resumed after step 1
    progress.start_epoch(1, 2)
    progress.step(1, 2, loss=0.5, lr=1e-3)
    progress.step(2, 3, loss=0.25, lr=1e-3)
    progress.end_epoch("epoch 1/2: ...", {"test_top1": 0.5})
    progress.line("see [bold]x[/] \x1b[31m")
    progress.close()
    return stream.getvalue().splitlines()


def test_the_training_bar_shows_epoch_counts_and_postfix_and_lines_above_it(monkeypatch):
    """A stream that is no terminal gets the bar's final state once, at close; lines given
    to the bar come before it, escaped and without markup."""
    first, bar = _bar_after_two_steps(monkeypatch, 160)
    assert first.endswith("s] see [bold]x[/] \\x1b[31m"), first
    assert bar.startswith("epoch 1/2 ") and " 3/4 " in bar and " steps/s " in bar, bar
    assert bar.endswith("loss=0.2500, lr=1.00e-03, test_top1=0.5000"), bar
    _, narrow = _bar_after_two_steps(monkeypatch, 60)  # the fields are cut, not the counts
    assert narrow.startswith("epoch 1/2 ") and " 3/4 " in narrow and narrow.endswith("…"), narrow
    assert len(narrow) <= 60


def test_the_training_bar_redraws_in_place_on_a_terminal():
    import io

    from mlpmixer.progress import Bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = Bar(total=3, stream=stream)
    for step in range(3):
        bar.describe(f"epoch {step + 1}/3")
        bar.advance()
    bar.close()
    assert "\r" in stream.getvalue() or "\x1b[" in stream.getvalue()  # redrawn, not appended
    assert "epoch 3/3" in stream.getvalue() and "3/3" in stream.getvalue()


def test_a_line_above_the_bar_is_escaped(monkeypatch):
    """Before: in bar mode (a terminal) the run's lines went to the terminal raw, so an ANSI
    sequence in a data set path or --out drove it; in log mode they were escaped."""
    line = next(line for line in _bar_after_two_steps(monkeypatch, 160) if " see " in line)
    assert "\x1b" not in line and line.endswith("see [bold]x[/] \\x1b[31m"), line
