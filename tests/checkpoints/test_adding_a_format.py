"""The recipe of docs/architecture.md, "Adding a checkpoint format", run end to end.

A toy format is written in this one file, as a format module of
src/mlpmixer/checkpoints/formats/ is: detect, read, write and the fields it keeps, in one
`CheckpointFormat`. The fixture puts it into the registry where its line in
`mlpmixer.choices.CHECKPOINT_FORMATS` would (before ``state_dict``, which is tried last);
then the library and the CLI save, detect, load, convert, inspect and evaluate it with no
other change.

The toy format: a ``.toy`` file is a safetensors file whose keys are this package's names
with ``/`` for ``.`` behind ``toy/``, holding tensors only. Its GELU is the exact (erf) one
unless a sidecar says otherwise.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import mlpmixer
from mlpmixer.checkpoints import formats
from mlpmixer.checkpoints.formats.base import Candidate, Checkpoint, CheckpointFormat
from mlpmixer.cli import cli
from mlpmixer.data import build_dataset
from mlpmixer.fileio import atomic_path
from mlpmixer.models.config import MixerConfig

# --- the format: what a file src/mlpmixer/checkpoints/formats/toy.py would hold -------------

SUFFIX = ".toy"
PREFIX = "toy/"


def _detect(candidate: Candidate) -> bool:
    return candidate.path.suffix == SUFFIX


def _read(candidate: Candidate) -> Checkpoint:
    stored = load_file(candidate.path)  # safetensors: nothing is unpickled
    state = {k.removeprefix(PREFIX).replace("/", "."): v for k, v in stored.items()}
    return candidate.read_as(FORMAT, state)  # config: shapes + defaults + the sidecar


def _write(path: Path, config: MixerConfig, state: Mapping[str, torch.Tensor]) -> None:
    tensors = {PREFIX + k.replace(".", "/"): v.detach().contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp)


FORMAT = CheckpointFormat(
    name="toy",
    detect=_detect,
    read=_read,
    write=_write,
    suffixes=(SUFFIX,),
    defaults={"gelu": "none"},
    tensors_only=lambda path: True,
)

# --- its registry line ------------------------------------------------------------------------


@pytest.fixture
def toy_registered(monkeypatch):
    """``("toy", True)`` before ``("state_dict", True)`` in choices.CHECKPOINT_FORMATS."""
    names = [fmt.name for fmt in formats.REGISTRY]
    at = names.index("state_dict")
    registry = (*formats.REGISTRY[:at], FORMAT, *formats.REGISTRY[at:])
    monkeypatch.setattr(formats, "REGISTRY", registry)


@pytest.fixture(scope="module")
def digits_model():
    """A tiny random Mixer for scikit-learn's digits, with settings the toy file cannot hold
    (tanh GELU, its own mean and std, class names)."""
    _, info = build_dataset("digits", "test")
    torch.manual_seed(0)
    model = mlpmixer.create_model(
        "mixer_t2_8", in_chans=1, class_names=info.class_names, mean=(0.4,), std=(0.3,)
    )
    return model.eval()


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(1)
    with torch.no_grad():
        return model.eval()(torch.randn(4, 1, 8, 8))


def test_a_toy_file_saves_detects_and_loads_with_its_sidecar(
    digits_model, toy_registered, tmp_path
):
    path = tmp_path / "digits.toy"
    with pytest.warns(UserWarning, match=r"kept in digits\.toy\.mlpmixer\.json") as caught:
        mlpmixer.save_model(digits_model, path)  # the suffix picks the format
    lost = str(caught[0].message)
    assert "class names, mean, std," in lost and "gelu='tanh'" in lost  # what .toy cannot hold
    assert set(load_file(path)) == {"toy/" + k.replace(".", "/") for k in digits_model.state_dict()}
    assert mlpmixer.checkpoints.detect_format(path) == "toy"
    loaded = mlpmixer.load_model(path)
    assert loaded.config == digits_model.config  # shapes inferred, the rest from the sidecar
    assert torch.equal(_outputs(loaded), _outputs(digits_model))


def test_without_its_sidecar_a_toy_file_reads_back_the_formats_defaults(
    digits_model, toy_registered, tmp_path
):
    path = tmp_path / "digits.toy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlpmixer.save_model(digits_model, path)
    Path(f"{path}.mlpmixer.json").unlink()
    config = mlpmixer.load_model(path).config
    assert (config.gelu, config.mean, config.class_names) == ("none", (0.5,), None)
    assert config.hidden_dim == digits_model.config.hidden_dim


@pytest.mark.slow
def test_the_cli_converts_inspects_and_evaluates_a_toy_file(digits_model, toy_registered, tmp_path):
    native = tmp_path / "native"
    digits_model.save_pretrained(native)
    toy = tmp_path / "converted.toy"
    run = CliRunner().invoke(cli, ["convert", str(native), str(toy)])
    assert run.exit_code == 0, run.output
    assert toy.is_file() and Path(f"{toy}.mlpmixer.json").is_file()

    info = CliRunner().invoke(cli, ["info", str(toy), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.output)
    assert (summary["format"], summary["loads"], summary["gelu"]) == ("toy", True, "tanh")

    back = tmp_path / "back"
    run = CliRunner().invoke(cli, ["convert", str(toy), str(back)])
    assert run.exit_code == 0, run.output
    assert torch.equal(_outputs(mlpmixer.load_model(back)), _outputs(digits_model))

    scores = {}
    for name, checkpoint in (("native", native), ("toy", toy)):
        run = CliRunner().invoke(
            cli, ["eval", "--checkpoint", str(checkpoint), "--dataset", "digits", "--json"]
        )
        assert run.exit_code == 0, run.output
        scores[name] = json.loads(run.output)
    assert scores["toy"]["top1"] == scores["native"]["top1"]
    assert scores["toy"]["loss"] == scores["native"]["loss"]  # the same numbers, not close ones
