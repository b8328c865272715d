"""Training run directories as checkpoints: ``RUN`` and ``RUN/checkpoints/last.pt``.

``RUN`` means the model the run reports as its result (``summary.json``'s ``checkpoint``,
``RUN/model``); ``last.pt`` means the weights of the latest training checkpoint, with the
model config stored next to them (or, in files written before it was stored, the config of
the run's finished model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..layout import (
    CHECKPOINT_DIR,
    CONFIG_JSON,
    LAST_CHECKPOINT,
    MODEL_DIR,
    RUN_CONFIG_FILE,
    SUMMARY_FILE,
)
from ..models.config import MixerConfig
from ..models.spec import config_from_dict

RESULT_DIR = MODEL_DIR  # what train() writes and names in summary.json


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / RUN_CONFIG_FILE).is_file() and (path / CHECKPOINT_DIR).is_dir()


def is_training_checkpoint(path: Path) -> bool:
    return (
        path.is_file()
        and path.name == LAST_CHECKPOINT
        and path.parent.name == CHECKPOINT_DIR
        and (path.parent.parent / RUN_CONFIG_FILE).is_file()
    )


def run_result_dir(run_dir: Path) -> Path:
    """The model folder a finished run reports as its result; `CheckpointError` if unfinished."""
    summary_path = run_dir / SUMMARY_FILE
    if not summary_path.is_file():
        raise CheckpointError(
            f"{run_dir}: the run has not finished (no {SUMMARY_FILE}, no model yet); use "
            f"{run_dir}/{CHECKPOINT_DIR}/{LAST_CHECKPOINT} for its latest weights, or finish it with "
            f"mlpmixer train --resume {run_dir}"
        )
    try:
        reported = json.loads(summary_path.read_text()).get("checkpoint") or RESULT_DIR
    except (OSError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{summary_path}: not a readable run summary ({err})") from err
    # by its folder name: the run directory may have been moved since it was written
    return run_dir / Path(str(reported)).name


def read_training_checkpoint(path: Path) -> tuple[MixerConfig, dict[str, torch.Tensor]]:
    """The model config and weights in ``RUN/checkpoints/last.pt`` (checked, never unpickled)."""
    from .train_state import load_train_state

    run_dir = path.parent.parent
    state: dict[str, Any] = load_train_state(run_dir)
    config = state.get("model_config")
    if config is None and (run_dir / RESULT_DIR / CONFIG_JSON).is_file():
        config = json.loads((run_dir / RESULT_DIR / CONFIG_JSON).read_text())
    if config is None:
        raise CheckpointError(
            f"{path}: this training checkpoint does not record the model's config (written "
            f"by an older mlpmixer); finish the run (mlpmixer train --resume {run_dir}) and "
            f"use {run_dir}/{RESULT_DIR}"
        )
    return config_from_dict(config), state["model"]
