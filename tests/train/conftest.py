"""Tiny training configs shared by the run-level tests (seconds on a shared 2-core CPU)."""

from __future__ import annotations

import pytest

from mlpmixer.train import TrainConfig

TINY_MODEL = {"hidden_dim": 16, "channels_mlp_dim": 32, "tokens_mlp_dim": 8, "num_blocks": 2}


def tiny_config(**sections) -> dict:
    """A digits run of a 3k-parameter Mixer; ``sections`` update the config sections."""
    data = {
        "model": {"name": "mixer_t2_8", "overrides": dict(TINY_MODEL)},
        "data": {"dataset": "digits"},
        "optim": {"name": "adamw", "lr": 0.003, "weight_decay": 0.05},
        "schedule": {"name": "cosine", "warmup_steps": 3},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1},
        "run": {"progress": "none", "plot": False},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return data


@pytest.fixture
def tiny():
    """``tiny(**sections) -> TrainConfig``."""

    def make(**sections) -> TrainConfig:
        return TrainConfig.from_dict(tiny_config(**sections))

    return make
