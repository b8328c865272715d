"""`predict`: one bad input never stops the others; each file once; names printed safely.

Before: a 300-character path (ENAMETOOLONG from ``is_dir``) or an image whose preparation
raised something other than OSError/ValueError aborted every prediction; a file listed
twice (or also inside a listed directory) was predicted twice; ``--batch-size -1``
predicted nothing with exit 0; an ANSI escape in a class name went to the terminal raw.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import mlpmixer.evaluate.predict as predict_module
from mlpmixer import create_model
from mlpmixer.cli import cli
from mlpmixer.errors import ConfigError
from mlpmixer.evaluate.predict import predict_files


def _model(**fields):
    return create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                        channels_mlp_dim=8, num_classes=2, in_chans=1, **fields)  # fmt: skip


@pytest.fixture
def images(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / name)
    return tmp_path


def test_a_path_too_long_for_the_file_system_is_one_failure(images):
    too_long = str(images / ("x" * 300 + ".png"))
    report = predict_files(_model(), [too_long, str(images / "a.png")])
    assert [p.path for p in report.predictions] == [str(images / "a.png")]
    assert [f["path"] for f in report.failures] == [too_long]


def test_an_unexpected_error_in_one_image_is_reported_and_the_rest_predicted(images, monkeypatch):
    real = predict_module.prepare_image

    def flaky(path, config):
        if path.name == "a.png":
            raise RuntimeError("resize failed")
        return real(path, config)

    monkeypatch.setattr(predict_module, "prepare_image", flaky)
    report = predict_files(_model(), [str(images)])
    assert [p.path for p in report.predictions] == [str(images / "b.png")]
    assert report.failures == [
        {"path": str(images / "a.png"), "error": "RuntimeError: resize failed"}
    ]


def test_a_file_reached_twice_is_predicted_once(images):
    a = images / "a.png"
    report = predict_files(_model(), [str(a), str(images), str(images / "." / "a.png")])
    assert sorted(p.path for p in report.predictions) == [str(a), str(images / "b.png")]


@pytest.mark.parametrize("batch_size", [0, -1])
def test_a_batch_size_below_one_is_refused(images, batch_size):
    with pytest.raises(ConfigError, match="batch_size"):
        predict_files(_model(), [str(images)], batch_size=batch_size)


def test_control_characters_in_class_names_are_escaped_when_printed(images, tmp_path):
    path = tmp_path / "model"
    _model(class_names=["\x1b[31mred", "ok\x07"]).save_pretrained(path)
    args = ["predict", str(images / "a.png"), "--checkpoint", str(path), "--top-k", "2"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[31mred" in result.output and "ok\\x07" in result.output
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert {t["class"] for t in saved["predictions"][0]["top"]} == {"\x1b[31mred", "ok\x07"}
