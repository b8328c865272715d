"""The network: config, module, registry, analytic cost and resolution change."""

from .base import MlpFamilyModel, build_model, family_class
from .config import MixerConfig
from .flops import flops_per_image, macs_per_image, param_count
from .gmixer import GMixer
from .gmlp import GMlp
from .mixer import MixerBlock, MlpMixer
from .registry import create_model, list_models, model_config, model_entry, register_model
from .resmlp import ResMlp
from .spec import FamilySpec, Paper, TimmNames, family_names, family_spec, register_family

__all__ = [
    "FamilySpec",
    "GMixer",
    "GMlp",
    "MixerBlock",
    "MixerConfig",
    "MlpFamilyModel",
    "MlpMixer",
    "Paper",
    "ResMlp",
    "TimmNames",
    "build_model",
    "create_model",
    "family_class",
    "family_names",
    "family_spec",
    "flops_per_image",
    "list_models",
    "macs_per_image",
    "model_config",
    "model_entry",
    "param_count",
    "register_family",
    "register_model",
]
