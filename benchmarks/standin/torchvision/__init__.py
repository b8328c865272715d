"""A minimal stand-in for torchvision, only so that ``import timm`` works next to a CPU-only torch.

benchmarks/vs_timm.py puts this folder on ``sys.path`` for the single ``import timm`` and only
when the real torchvision is missing. timm imports a few names from torchvision at import time
(transforms' ``InterpolationMode``, ``ops.misc.FrozenBatchNorm2d``, dataset classes); none of
them is used by the Mixer models. Any use of a stand-in name raises ``NotImplementedError``.

timm's FX tests need torchvision's real ``models/feature_extraction.py`` (BSD-licensed, not
ours to commit): benchmarks/timm_test_models.py copies this folder to a temporary one and puts
that file, taken from PyPI's torchvision wheel at run time, next to this one; it is then
loaded as ``torchvision.models.feature_extraction`` instead of placeholders.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
import types
from pathlib import Path

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


def _feature_extraction() -> types.ModuleType:
    """torchvision's real feature_extraction.py when one lies next to this file, else
    placeholders. Loaded last: it reads ``torchvision.ops`` (its autowrap modules)."""
    real = Path(__file__).with_name("feature_extraction.py")
    if not real.is_file():
        return _module("models.feature_extraction")
    spec = importlib.util.spec_from_file_location(f"{__name__}.models.feature_extraction", real)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


feature_extraction = _feature_extraction()
models = _module("models", feature_extraction=feature_extraction)
utils = _module("utils")
