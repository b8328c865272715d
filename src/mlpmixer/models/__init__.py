"""The network: config, module, registry, analytic cost and resolution change."""

from .config import MixerConfig
from .flops import flops_per_image, macs_per_image, param_count
from .mixer import MixerBlock, MlpMixer
from .registry import create_model, list_models, model_config, model_entry, register_model

__all__ = [
    "MixerBlock",
    "MixerConfig",
    "MlpMixer",
    "create_model",
    "flops_per_image",
    "list_models",
    "macs_per_image",
    "model_config",
    "model_entry",
    "param_count",
    "register_model",
]
