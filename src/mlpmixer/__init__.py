"""mlpmixer: MLP-Mixer (Tolstikhin et al., 2021) and its family (gMLP, ResMLP, gMixer) for PyTorch.

Models and checkpoints::

    import mlpmixer
    model = mlpmixer.create_model("mixer_b16_224")      # or "B/16"; list_models("gmlp*")
    model = mlpmixer.load_model("Mixer-B_16.npz")       # official, timm, hub id or own format
    model.save_pretrained("my-mixer")                    # safetensors + config.json

Training (the same recipes and code path as ``mlpmixer train``)::

    result = mlpmixer.train()                            # configs/digits.yaml: ~99.4% in a minute
    result = mlpmixer.train(dataset="cifar10", overrides=["train.epochs=10"])

Classes: `MlpMixer`, `GMlp`, `ResMlp`, `GMixer` (all `MlpFamilyModel`), `MixerConfig`;
errors: `MixerError` and its subclasses (`mlpmixer.errors`), each with an exit code.
Subpackages: `mlpmixer.train` (recipes, runs, resume), `mlpmixer.data` (data sets),
`mlpmixer.evaluate` (eval, predict, few-shot), `mlpmixer.analysis` (the paper's figures),
`mlpmixer.export` (ONNX, TorchScript), `mlpmixer.bench`; the ``mlpmixer`` command
(`mlpmixer.cli`) runs all of them. Guides: README.md and docs/ in the repository.
"""

import importlib
from typing import TYPE_CHECKING

from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DownloadError,
    InputShapeError,
    MixerError,
    RunError,
)

__version__ = "0.1.0"

# name -> the module it comes from, imported on first use: importing torch and the models
# takes seconds, and ``mlpmixer --help`` (or ``--version``, or a usage error) needs none of
# it. ``mlpmixer.create_model`` etc. work as before; `__dir__` lists them.
_LAZY = {
    **dict.fromkeys(("convert", "detect_format", "load_model", "save_model"), ".checkpoints"),
    **dict.fromkeys(
        ("GMixer", "GMlp", "MixerConfig", "MlpFamilyModel", "MlpMixer", "ResMlp",
         "create_model", "list_models", "model_config", "register_model"),
        ".models",
    ),
}  # fmt: skip
_SUBPACKAGES = ("analysis", "bench", "checkpoints", "cli", "data", "evaluate", "export",
                "models", "train")  # fmt: skip

if TYPE_CHECKING:  # what type checkers and IDEs see: the names as real imports
    from .checkpoints import convert, detect_format, load_model, save_model
    from .models import (
        GMixer,
        GMlp,
        MixerConfig,
        MlpFamilyModel,
        MlpMixer,
        ResMlp,
        create_model,
        list_models,
        model_config,
        register_model,
    )


def __getattr__(name: str) -> object:
    """The library's functions and classes (`_LAZY`) and its subpackages, imported on first
    use so that ``import mlpmixer`` stays light. ``mlpmixer.train`` is the training package
    (callable: ``mlpmixer.train()``)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # looked up once
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


# What `help(mlpmixer)` and ``from mlpmixer import *`` show: the functions a user starts
# with. The classes (MlpMixer, GMlp, ResMlp, GMixer, MlpFamilyModel, MixerConfig) and the
# errors (MixerError and its subclasses, `mlpmixer.errors`) are importable from here too but
# left out: pydoc printed every inherited torch.nn.Module method of each (7,000+ lines).
__all__ = [
    "__version__",
    "convert",
    "create_model",
    "detect_format",
    "list_models",
    "load_model",
    "model_config",
    "register_model",
    "save_model",
    "train",
]
