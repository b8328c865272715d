"""Training and fine-tuning: the paper's recipes as configs, from one CPU to many GPUs.

    from mlpmixer.train import TrainConfig, load_config, train
    result = train()                                    # the digits default
    result = train(load_config("configs/cifar10.yaml"), overrides=["train.epochs=10"])
    result = train(resume="runs/cifar10-mixer_s4_32-...")  # continue exactly
    result.run_dir, result.summary["test_top1"], result.model

See `mlpmixer.train.run` for the run directory, `mlpmixer.train.config` for the keys and
docs/training.md for recipes, resuming and multi-GPU/multi-node commands.
"""

from .config import TrainConfig, load_config, parse_assignment
from .presets import finetune_config, preset, preset_names
from .run import RunResult, train

__all__ = [
    "RunResult",
    "TrainConfig",
    "finetune_config",
    "load_config",
    "parse_assignment",
    "preset",
    "preset_names",
    "train",
]
