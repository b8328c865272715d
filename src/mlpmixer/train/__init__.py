"""Training and fine-tuning: the paper's recipes as configs, from one CPU to many GPUs.

    import mlpmixer
    result = mlpmixer.train()                          # = `mlpmixer train`: configs/digits.yaml
    result = mlpmixer.train(dataset="cifar10", model="gmlp_s16_224", overrides=["train.epochs=2"])

    from mlpmixer.train import TrainConfig, load_config, train
    result = train(load_config("configs/cifar10.yaml"), overrides=["train.epochs=10"])
    result = train(resume="runs/cifar10-mixer_s4_32-...")  # continue exactly
    result.run_dir, result.summary["test_top1"], result.model

See `mlpmixer.train.run` for the run directory, `mlpmixer.train.config` for the keys and
docs/training.md for recipes, resuming and multi-GPU/multi-node commands.
"""

import sys
import types
from typing import Any

from .config import TrainConfig, load_config, parse_assignment
from .presets import finetune_config, preset, preset_names, resolve_config
from .run import RunResult, train


class _CallablePackage(types.ModuleType):
    """``mlpmixer.train(...)`` is `train`: the package stays importable as a package
    (``mlpmixer.train.config``...) and is also the function Python users call."""

    def __call__(self, *args: Any, **kwargs: Any) -> RunResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = [
    "RunResult",
    "TrainConfig",
    "finetune_config",
    "load_config",
    "parse_assignment",
    "preset",
    "preset_names",
    "resolve_config",
    "train",
]
