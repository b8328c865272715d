"""The recipe of docs/architecture.md, "Adding a data source", run end to end: a toy source
written in this one file (a class and a claim) trains with `mlpmixer.train.train`, and its
model is evaluated by `evaluate_checkpoint` and ``mlpmixer eval``, with no other file touched.

Toy data: 8x8 grayscale images, black but for one bright 4x4 quadrant; the class is the
quadrant. Its training images differ from its test images (noise drawn per split).
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import Dataset

from mlpmixer.cli import cli
from mlpmixer.data import DatasetInfo, build_dataset
from mlpmixer.data.outline import dataset_outline
from mlpmixer.data.source import (
    DataOutline,
    DataSource,
    DataSplit,
    LoadOptions,
    SourceBase,
    register_source,
)
from mlpmixer.evaluate import evaluate_checkpoint
from mlpmixer.models.base import MlpFamilyModel
from mlpmixer.train import train

CLASSES = ("top-left", "top-right", "bottom-left", "bottom-right")


class Quadrants(Dataset):
    """``count`` images (1, 8, 8) in [0, 1]; item i is of class i % 4."""

    def __init__(self, count: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(count, 1, 8, 8, generator=generator) * 0.2
        self.labels = torch.arange(count) % 4
        for i, label in enumerate(self.labels.tolist()):
            row, col = divmod(label, 2)
            self.images[i, 0, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4] += 0.8

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class QuadrantSource(SourceBase):
    """``toy:N``: N training images (and N // 4 test images) of `Quadrants`."""

    native_size = (8, 8)
    in_memory = True  # no loader workers

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.count = int(text.removeprefix("toy:"))

    def outline(self, val_fraction: float, seed: int) -> DataOutline:
        return DataOutline(self.name, len(CLASSES), self.count)

    def load(self, split: str, options: LoadOptions) -> DataSplit:
        if options.img_size not in (None, (8, 8)) or options.in_chans not in (None, 1):
            raise ValueError(f"the toy source is 8x8 gray, asked {options}")
        count = self.count if split == "train" else self.count // 4
        dataset = Quadrants(count, seed=0 if split == "train" else 1)
        info = DatasetInfo(
            name=self.name, split=split, num_classes=4, class_names=CLASSES, in_chans=1,
            img_size=(8, 8), mean=(0.25,), std=(0.4,), num_examples=count, in_memory=True,
        )  # fmt: skip
        return DataSplit(dataset, info)


def claim(text: str) -> DataSource | None:
    return QuadrantSource(text) if text.startswith("toy:") else None


@pytest.fixture
def toy_source():
    remove = register_source(claim)
    yield
    remove()


def test_the_toy_source_keeps_the_protocol(toy_source):
    assert isinstance(QuadrantSource("toy:8"), DataSource)
    assert dataset_outline("toy:8") == DataOutline("toy:8", 4, 8)
    dataset, info = build_dataset("toy:8", "test")
    assert len(dataset) == 2 and info.class_names == CLASSES and info.img_size == (8, 8)


@pytest.mark.slow
def test_a_toy_source_trains_and_evaluates_end_to_end(toy_source, tmp_path):
    out = tmp_path / "run"
    overrides = [
        "train.epochs=6", "train.batch_size=16", "train.threads=1", f"run.out={out}",
        "run.progress=none", "run.plot=false", "optim.lr=0.01",
    ]  # fmt: skip
    result = train(dataset="toy:128", overrides=overrides, progress=False)
    # the model was chosen by the documented rule for the source's native 8 px
    assert result.summary["model"] == "mixer_t2_8" and result.summary["dataset"] == "toy:128"
    assert result.model.config.class_names == CLASSES and result.model.config.in_chans == 1
    assert result.summary["test_top1"] == 1.0  # a bright quadrant is easy to find

    evaluated, model = evaluate_checkpoint(out / "model", "toy:128")
    assert isinstance(model, MlpFamilyModel)
    assert evaluated.num_examples == 32 and evaluated.top1 == result.summary["test_top1"]
    assert evaluated.loss == pytest.approx(result.summary["test_loss"], rel=1e-5)

    shown = CliRunner().invoke(
        cli, ["eval", "--checkpoint", str(out / "model"), "--dataset", "toy:128", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["top1"] == 1.0


def test_without_registration_the_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shown = CliRunner().invoke(cli, ["eval", "--checkpoint", "nowhere", "--dataset", "toy:8"])
    assert shown.exit_code == 2 and "unknown data set 'toy:8'" in shown.output
