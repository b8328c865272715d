"""The checkpoint-format registry: one module per format, one line each in
`mlpmixer.choices.CHECKPOINT_FORMATS`, and everything that lists formats reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import mlpmixer
from mlpmixer.checkpoints import formats
from mlpmixer.checkpoints.load import FORMATS, WRITABLE_FORMATS, format_for_path
from mlpmixer.choices import CHECKPOINT_FORMATS
from mlpmixer.cli import cli
from mlpmixer.errors import ConfigError

FORMAT_DIR = Path(formats.__file__).parent


def test_every_format_module_is_registered_once_in_the_order_of_choices():
    modules = {p.stem for p in FORMAT_DIR.glob("*.py")} - {"__init__", "base"}
    names = [name for name, _ in CHECKPOINT_FORMATS]
    assert sorted(names) == sorted(modules)  # a module without its line is never tried
    assert [fmt.name for fmt in formats.REGISTRY] == names == list(FORMATS)
    assert names[-1] == "state_dict"  # this package's own key names: tried after all others
    writers = tuple(fmt.name for fmt in formats.REGISTRY if fmt.write is not None)
    assert writers == WRITABLE_FORMATS == tuple(n for n, writes in CHECKPOINT_FORMATS if writes)


def test_convert_offers_exactly_the_formats_that_write():
    option = next(p for p in cli.commands["convert"].params if p.name == "fmt")
    assert tuple(option.type.choices) == WRITABLE_FORMATS


@pytest.mark.parametrize(
    ("name", "implied"),
    [("m.npz", "official"), ("m.pth", "timm"), ("m.bin", "timm"), ("m.safetensors", "native"),
     ("folder", "native"), ("m.v2", "native")],
)  # fmt: skip
def test_a_destination_suffix_implies_its_format(name, implied):
    assert format_for_path(Path(name)) == implied


def test_an_unknown_or_read_only_format_is_refused_with_the_writable_ones(tmp_path):
    model = mlpmixer.create_model("mixer_t2_8")
    with pytest.raises(ConfigError, match=r"one of \('native', 'official', 'timm', 'state_dict'\), got 'facebook'"):  # fmt: skip
        mlpmixer.save_model(model, tmp_path / "m.pth", format="facebook")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["m.pth", "m.npz"])
def test_native_to_another_formats_file_name_is_refused_before_writing(tmp_path, name):
    """Before: a native *folder* m.pth was written, then the sidecar beside it failed with a
    bare IsADirectoryError (``convert m m.pth --to native``: exit 1 and a stray folder)."""
    model = mlpmixer.create_model("mixer_t2_8")
    with pytest.raises(ConfigError, match=r"native format is a folder or a \.safetensors file"):
        mlpmixer.save_model(model, tmp_path / name, format="native")
    assert list(tmp_path.iterdir()) == []
    source = tmp_path / "model"
    model.save_pretrained(source)
    run = CliRunner().invoke(cli, ["convert", str(source), str(tmp_path / name), "--to", "native"])
    assert run.exit_code == 2 and "native format is a folder" in run.output, run.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_native_to_a_safetensors_file_or_a_folder_still_round_trips(tmp_path):
    model = mlpmixer.create_model("mixer_t2_8")
    for target in (tmp_path / "m.safetensors", tmp_path / "folder"):
        mlpmixer.save_model(model, target, format="native")
        loaded = mlpmixer.load_model(target)
        assert mlpmixer.checkpoints.detect_format(target) == "native"
        ours, theirs = loaded.state_dict(), model.state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
