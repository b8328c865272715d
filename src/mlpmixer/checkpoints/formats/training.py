"""A training run's ``RUN/checkpoints/last.pt``: the weights of its latest step, with the model
config stored beside them (`checkpoints.run_dir`, `checkpoints.train_state`). Read only:
training writes it. (A run directory itself means its finished model, a native folder.)
"""

from __future__ import annotations

from ..run_dir import is_training_checkpoint, read_training_checkpoint
from .base import Candidate, Checkpoint, CheckpointFormat


def _read(candidate: Candidate) -> Checkpoint:
    config, state = read_training_checkpoint(candidate.path)
    return Checkpoint(FORMAT.name, config, state, candidate.source)


FORMAT = CheckpointFormat(
    name="training",
    detect=lambda candidate: is_training_checkpoint(candidate.path),
    read=_read,
)
