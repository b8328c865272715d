"""The data's facts come from its source (#28): `data_facts` asks `DataSource.facts` instead of
choosing between ``hf:``, shards and folders itself, so a source of one's own
(`register_source`) sizes the run's defaults as the built-in kinds do. Before, its text was
read as a folder path: no facts, and the generic 224-px Mixer-S/16 at batch 128."""

from __future__ import annotations

import pytest

from mlpmixer.data.source import SourceBase, register_source
from mlpmixer.train.data_defaults import data_facts
from mlpmixer.train.presets import resolve_config


class _Toy(SourceBase):
    def facts(self, train_split, val_fraction, seed):
        from mlpmixer.data.source import DataFacts

        return DataFacts(train_images=200, classes=3, side=30)


@pytest.fixture
def toy():
    remove = register_source(lambda text: _Toy(text) if text.startswith("toy:") else None)
    yield "toy:squares"
    remove()


def test_a_registered_source_gives_the_facts(toy):
    config = resolve_config(dataset=toy)
    facts = data_facts(config)
    assert (facts.train_images, facts.classes, facts.side) == (200, 3, 30)
    assert config.model.name == "mixer_t4_28" and config.model.img_size == 28
    assert config.train.batch_size == 32  # a quarter of 200 images, a power of two


def test_text_that_names_no_source_has_no_facts(tmp_path):
    config = resolve_config(dataset=str(tmp_path / "missing"))
    assert data_facts(config) is None
