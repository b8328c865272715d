"""Names on disk, written once: a training run's directory and the checkpoint files.

A run directory (``mlpmixer train --out RUN``)::

    RUN/run.json  config.yaml  metrics.jsonl  summary.json  curves.png  skipped_images.txt
    RUN/model/       the final model (the project's checkpoint format)
    RUN/model_ema/   the EMA model, when train.ema_decay is set
    RUN/checkpoints/last.pt   the state to resume from

A checkpoint directory in the Hugging Face hub layout holds ``config.json`` and
``model.safetensors`` (timm's older uploads: ``pytorch_model.bin``).
"""

from __future__ import annotations

import os
from pathlib import Path

# a training run
RUN_CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.png"
SKIPPED_FILE = "skipped_images.txt"  # data.skip_bad_images: "PATH: reason" per file left out
MODEL_DIR = "model"
EMA_MODEL_DIR = "model_ema"
CHECKPOINT_DIR = "checkpoints"
RUN_ID_FILE = "run.json"  # marks a run of ours: {"format": "mlpmixer-run", "run_id": ...}
LAST_CHECKPOINT = "last.pt"

# checkpoint files
CONFIG_JSON = "config.json"
SAFETENSORS_WEIGHTS = "model.safetensors"
TORCH_WEIGHTS = "pytorch_model.bin"
SAFETENSORS_SUFFIX = ".safetensors"
NPZ_SUFFIX = ".npz"
TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def checkpoint_label(source: str | os.PathLike[str]) -> str:
    """A short name for titles and summaries: the file name, or RUN/model for a run's model."""
    text = str(source).rstrip("/")
    path = Path(text)
    if path.name in (MODEL_DIR, EMA_MODEL_DIR) and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name or text
