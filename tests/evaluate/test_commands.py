"""`mlpmixer eval`, `predict` and `fewshot`: JSON on stdout and on disk, PNG, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mlpmixer.cli import cli

pytestmark = pytest.mark.usefixtures("one_thread_per_test")


def _run(args):
    result = CliRunner().invoke(cli, args)
    return result


def test_eval_command_writes_json_and_confusion_png(digits_checkpoint, digits_test, tmp_path):
    path, model = digits_checkpoint
    out = tmp_path / "eval"
    result = _run(
        ["eval", "--checkpoint", str(path), "--dataset", "digits", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    images, labels, _ = digits_test
    with torch.no_grad():
        direct = (model((images - 0.5) / 0.5).argmax(1) == labels).double().mean().item()
    assert data["top1"] == pytest.approx(direct)
    assert json.loads((out / "eval.json").read_text())["top1"] == data["top1"]
    with Image.open(out / "confusion.png") as png:
        assert png.format == "PNG"
    table = _run(["eval", "--checkpoint", str(path), "--dataset", "digits", "--out", str(out)])
    assert (
        table.exit_code == 0 and "top-1" in table.output and f"{100 * direct:.2f}%" in table.output
    )


def test_eval_command_bad_input_exits_2(digits_checkpoint, tmp_path):
    path, _ = digits_checkpoint
    result = _run(["eval", "--checkpoint", str(path), "--dataset", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "error:" in result.output


def test_predict_command_reports_the_corrupt_file_and_exits_1(digits_checkpoint, tmp_path):
    path, _ = digits_checkpoint
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    result = _run(["predict", "--checkpoint", str(path), "--top-k", "2", "--out", str(out),
                   "--json", str(tmp_path / "ok.png"), str(tmp_path / "broken.jpg")])  # fmt: skip
    assert result.exit_code == 1
    assert "broken.jpg" in result.output  # named on stderr (mixed into output by CliRunner)
    data = json.loads((out / "predictions.json").read_text())
    assert [p["path"].rsplit("/", 1)[-1] for p in data["predictions"]] == ["ok.png"]
    assert len(data["predictions"][0]["top"]) == 2
    assert data["failures"][0]["path"].endswith("broken.jpg")
    good = _run(["predict", "--checkpoint", str(path), "--out", str(out), str(tmp_path / "ok.png")])
    assert good.exit_code == 0 and "ok.png" in good.output


def test_fewshot_command(digits_checkpoint, tmp_path):
    path, _ = digits_checkpoint
    out = tmp_path / "fs"
    result = _run(["fewshot", "--checkpoint", str(path), "--dataset", "digits", "--shots", "1,5",
                   "--seeds", "2", "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["shots"] for r in data["results"]] == [1, 5] and data["seeds"] == [0, 1]
    one, five = (r["mean_accuracy"] for r in data["results"])
    assert 0.3 < one < five <= 1.0  # trained features: far above chance (0.1)
    assert (out / "fewshot.json").is_file()
    bad = _run(["fewshot", "--checkpoint", str(path), "--dataset", "digits", "--shots", "one"])
    assert bad.exit_code == 2


def test_eval_and_predict_write_next_to_the_checkpoint_not_to_results(
    digits_checkpoint, tmp_path, monkeypatch
):
    """Before: eval/predict/fewshot wrote ./results/<command>/ wherever they were run."""
    path, _ = digits_checkpoint
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    assert _run(["eval", "--checkpoint", str(path), "--dataset", "digits"]).exit_code == 0
    assert _run(["predict", "--checkpoint", str(path), str(tmp_path / "ok.png")]).exit_code == 0
    assert (path.parent / "eval-digits-test" / "eval.json").is_file()
    assert (path.parent / "predict" / "predictions.json").is_file()
    assert not (tmp_path / "results").exists()


def test_results_of_a_runs_model_go_into_the_run(tmp_path):
    from mlpmixer.cli.out_dir import beside_checkpoint

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "model").mkdir()
    (run / "config.yaml").write_text("{}")
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    for checkpoint in (run, run / "model", run / "checkpoints" / "last.pt"):
        assert beside_checkpoint(str(checkpoint), "eval-digits-test") == run / "eval-digits-test"
    assert beside_checkpoint("hf-hub:timm/mixer_b16_224.goog_in21k", "eval") is None


def test_eval_lists_the_top_confused_pairs(digits_checkpoint, tmp_path):
    """A 1,000-class matrix is ~1 px per class: the mistakes come as a list too."""
    path, _ = digits_checkpoint
    result = _run(["eval", "--checkpoint", str(path), "--dataset", "digits", "--out",
                   str(tmp_path), "--json"])  # fmt: skip
    data = json.loads(result.stdout)
    counts = np.array(data["confusion"])
    np.fill_diagonal(counts, 0)
    assert data["top_confused"][0]["count"] == counts.max()
    text = (tmp_path / "confused_pairs.txt").read_text()
    first = data["top_confused"][0]
    assert f"{first['true']} -> {first['predicted']}" in text.splitlines()[1]
