"""Values given as Python values reach the config as values, never as text to re-read.

Before: ``train(resume=RUN, dataset=...)`` turned the value into ``"data.dataset=1.5"`` text
and read it back as YAML: a data set folder named ``1.5`` became the float 1.5 and the
resume was refused. The CLI's flags were quoted (``json.dumps``) into text for YAML to parse
again.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from click.testing import CliRunner

from mlpmixer.cli import cli
from mlpmixer.cli.train import flag_overrides
from mlpmixer.train import TrainConfig, train

TINY = ["model.overrides.hidden_dim=8", "model.overrides.num_blocks=1",
        "model.overrides.tokens_mlp_dim=4", "model.overrides.channels_mlp_dim=8",
        "train.threads=1", "run.progress=none", "run.plot=false", "train.batch_size=8"]  # fmt: skip


def _idx_dir(root):
    """MNIST-layout idx files of 8x8 images: 16 training and 8 test images of 10 classes."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for prefix, n in (("train", 16), ("t10k", 8)):
        images = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (root / f"{prefix}-{kind}-ubyte").write_bytes(header + array.tobytes())
    return root


def test_flags_are_typed_pairs():
    assert flag_overrides(dataset="1.5", out="null", img_size=(16, 24), epochs=2) == [
        ("data.dataset", "1.5"), ("run.out", "null"), ("model.img_size", (16, 24)),
        ("train.epochs", 2),
    ]  # fmt: skip
    config = TrainConfig().override(flag_overrides(dataset="1.5", out="null", img_size=(16, 24)))
    assert (config.data.dataset, config.run.out) == ("1.5", "null")
    assert tuple(config.model.img_size) == (16, 24)
    # --set text is still read as YAML, after the flags
    assert TrainConfig().override([("optim.lr", 0.5), "optim.lr=1e-3"]).optim.lr == 1e-3


@pytest.mark.slow
def test_a_resume_names_a_data_set_yaml_would_misread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _idx_dir(tmp_path / "1.5")
    out = tmp_path / "run"
    first = train(dataset="1.5", overrides=[*TINY, "train.epochs=1", f"run.out={out}"])
    assert first.summary["dataset"] == "1.5"
    again = train(resume=out, dataset="1.5", overrides=["train.epochs=2"], progress=False)
    assert again.summary["resumed"] is True and again.summary["epochs"] == 2
    shown = CliRunner().invoke(cli, ["train", "--resume", str(out), "--dataset", "1.5", "--json"])
    assert shown.exit_code == 0, shown.output
