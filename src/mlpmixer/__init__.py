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

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``mlpmixer.train``: the training package (callable: ``mlpmixer.train()``), imported on
    first use so that ``import mlpmixer`` stays light."""
    if name == "train":
        import importlib

        return importlib.import_module(".train", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
