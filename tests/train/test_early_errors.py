"""Issue 27 item 6: what can be checked before a model or data set is built is checked first.

Before: ``eval`` of a 4-class model on digits said "the model has 4 classes but digits has
10" after 77 s (under load), ``train --out`` over an existing run after 62 s, an unknown data
set after 36 s, ``finetune`` with batch 512 on 128 images after 95 s: each after loading the
model and/or the data. Each test here makes every builder fail, so the refusal must come
before any of them is called.
"""

from __future__ import annotations

import warnings

import pytest
from click.testing import CliRunner

import mlpmixer.data.facts as data_facts
import mlpmixer.evaluate.eval as eval_module
import mlpmixer.train.run as run_module
import mlpmixer.train.steps as steps_module
from mlpmixer import create_model, save_model
from mlpmixer.cli import cli


def _built(*args, **kwargs):
    raise AssertionError("a model or data set was built before the refusal")


@pytest.fixture
def nothing_loaded(monkeypatch):
    """No model or data set is built or loaded (a class folder may still be listed and its
    image headers read to size the run: `data.facts.folder_facts`, asked by its source)."""
    for module, name in [(run_module, "build_data"), (steps_module, "load_model"),
                         (steps_module, "create_model"), (eval_module, "as_model"),
                         (eval_module, "build_dataset")]:  # fmt: skip
        monkeypatch.setattr(module, name, _built)


@pytest.fixture
def nothing_built(nothing_loaded, monkeypatch):
    """`nothing_loaded`, and no folder's images are read either."""
    monkeypatch.setattr(data_facts, "folder_facts", _built)


@pytest.fixture(scope="module")
def four_classes(tmp_path_factory):
    model = create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                         channels_mlp_dim=8, num_classes=4, in_chans=1)  # fmt: skip
    root = tmp_path_factory.mktemp("models")
    model.save(root / "native")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "holds tensors only"
        save_model(model, root / "m.npz")
        save_model(model, root / "timm.safetensors", "timm")
    return root


def _run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


@pytest.mark.parametrize("name", ["native", "m.npz", "timm.safetensors"])
def test_eval_with_the_wrong_class_count_is_refused_before_loading(
    four_classes, nothing_built, name
):
    result = _run("eval", "--checkpoint", four_classes / name, "--dataset", "digits")
    assert result.exit_code == 2, result.output
    assert "the model has 4 classes but digits has 10" in result.output


def test_eval_on_an_unknown_data_set_is_refused_before_loading(four_classes, nothing_built):
    result = _run("eval", "--checkpoint", four_classes / "native", "--dataset", "digitz")
    assert result.exit_code == 2 and "unknown data set 'digitz'" in result.output, result.output


def test_train_out_over_a_run_is_refused_before_the_folder_is_read(tmp_path, nothing_built):
    from mlpmixer.train.run_guard import new_run_id, write_run_id

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    write_run_id(run, new_run_id())
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    (tmp_path / "photos" / "cat" / "1.png").write_bytes(b"x")
    result = _run("train", "--dataset", tmp_path / "photos", "--out", run)
    assert result.exit_code == 2, result.output
    assert "already holds a training run" in result.output


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_an_unknown_data_set_is_refused_before_any_model(
    four_classes, nothing_built, tmp_path, command
):
    args = ["--checkpoint", four_classes / "native"] if command == "finetune" else []
    result = _run(command, *args, "--dataset", "digitz", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "unknown data set 'digitz'" in result.output, result.output


def test_finetune_batch_larger_than_the_images_is_refused_before_loading(
    four_classes, nothing_loaded, tmp_path
):
    """The recipe's batch of 512 is now sized down to a small folder (issue 27 item 7); one
    given explicitly is refused before the model or the data is loaded."""
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(64):
            Image.new("L", (8, 8), i).save(tmp_path / "photos" / c / f"{i}.png")
    result = _run("finetune", "--checkpoint", four_classes / "native", "--dataset",
                  tmp_path / "photos", "--out", tmp_path / "r", "--batch-size", 512)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "train.batch_size=512 is larger than the training set (116 examples)" in result.output
