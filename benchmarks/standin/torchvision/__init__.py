"""A minimal stand-in for torchvision, only so that ``import timm`` works next to a CPU-only torch.

benchmarks/vs_timm.py puts this folder on ``sys.path`` for the single ``import timm`` and only
when the real torchvision is missing. timm imports a few names from torchvision at import time
(transforms' ``InterpolationMode``, ``ops.misc.FrozenBatchNorm2d``, dataset classes); none of
them is used by the Mixer models. Any use of a stand-in name raises ``NotImplementedError``.
"""

from __future__ import annotations

import enum
import sys
import types

__version__ = "0.0.0+mlpmixer-standin"


class _Unavailable:
    """Placeholder class: importable, but raises as soon as anything tries to use it."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("torchvision is a stand-in here (benchmarks/standin)")


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _placeholder(attr: str) -> type:
    if attr.startswith("__"):  # __file__, __path__ ...: tools (inspect) probe modules for these
        raise AttributeError(attr)
    return _Unavailable


def _module(name: str, **attrs) -> types.ModuleType:
    """Register ``torchvision.<name>`` in sys.modules; unknown attributes are placeholders."""
    module = types.ModuleType(f"{__name__}.{name}")
    module.__dict__.update(attrs)
    module.__getattr__ = _placeholder  # PEP 562: any other name
    sys.modules[module.__name__] = module
    return module


functional = _module("transforms.functional", InterpolationMode=InterpolationMode)
transforms = _module("transforms", functional=functional, InterpolationMode=InterpolationMode)
misc = _module("ops.misc", FrozenBatchNorm2d=_Unavailable)
ops = _module("ops", misc=misc)
datasets = _module("datasets")
feature_extraction = _module("models.feature_extraction")
models = _module("models", feature_extraction=feature_extraction)
utils = _module("utils")
