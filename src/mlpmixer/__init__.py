"""mlpmixer: MLP-Mixer (Tolstikhin et al., 2021) for PyTorch.

import mlpmixer
model = mlpmixer.create_model("mixer_b16_224")          # or "B/16"
model = mlpmixer.load_model("Mixer-B_16.npz")           # official, timm or own format
model.save_pretrained("my-mixer")                        # safetensors + config.json
"""

from .checkpoints import convert, detect_format, load_model, save_model
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DownloadError,
    InputShapeError,
    MixerError,
    RunError,
)
from .models import MixerConfig, MlpMixer, create_model, list_models, model_config, register_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DownloadError",
    "InputShapeError",
    "MixerConfig",
    "MixerError",
    "MlpMixer",
    "RunError",
    "__version__",
    "convert",
    "create_model",
    "detect_format",
    "list_models",
    "load_model",
    "model_config",
    "register_model",
    "save_model",
]
