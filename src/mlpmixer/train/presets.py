"""Built-in recipes: the config ``mlpmixer train --dataset NAME`` starts from.

Each preset is the same data as the shipped ``configs/<name>.yaml`` (a test keeps them
equal); the YAML files carry the comments that cite where each number comes from.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .config import TrainConfig, load_config

# The default job: a small Mixer on scikit-learn's 8x8 digits, < 1 minute on a 2-core CPU.
# mixer_t2_8 re-sized: digits upsampled to 16x16 and cut into 4x4 patches (16 tokens), so
# that rotations and sub-pixel shifts on the device have pixels to act on; width 64.
DIGITS: dict[str, Any] = {
    "model": {
        "name": "mixer_t2_8",
        "img_size": 16,
        "overrides": {
            "patch_size": 4,
            "hidden_dim": 64,
            "channels_mlp_dim": 256,
            "tokens_mlp_dim": 32,
        },
    },
    "data": {"dataset": "digits"},
    "optim": {"name": "adamw", "lr": 5e-3, "weight_decay": 0.05, "clip_grad_norm": 1.0},
    "schedule": {"name": "cosine", "warmup_epochs": 2.0},
    "augment": {"affine_degrees": 10.0, "affine_translate": 0.1, "affine_prob": 0.5},
    "train": {"epochs": 40, "batch_size": 64, "label_smoothing": 0.1, "threads": 1},
}

MNIST: dict[str, Any] = {
    "model": {"name": "mixer_t4_28"},
    "data": {"dataset": "mnist"},
    "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
    "schedule": {"name": "cosine", "warmup_epochs": 1.0},
    "augment": {"affine_translate": 0.1, "affine_degrees": 10.0},
    "train": {"epochs": 15, "batch_size": 256, "label_smoothing": 0.1},
}

FASHION_MNIST: dict[str, Any] = copy.deepcopy(MNIST)
FASHION_MNIST["data"]["dataset"] = "fashion-mnist"
FASHION_MNIST["augment"] = {"hflip": True, "pad_crop": 2}
FASHION_MNIST["train"]["epochs"] = 30

# CIFAR from scratch: the paper's pre-training recipe (Adam 0.9/0.999, warmup, linear decay,
# clipping at 1, RandAugment, mixup, stochastic depth) at CIFAR scale.
CIFAR10: dict[str, Any] = {
    "model": {"name": "mixer_s4_32", "overrides": {"drop_path_rate": 0.1}},
    "data": {"dataset": "cifar10"},
    "optim": {
        "name": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.1,
        "betas": [0.9, 0.999],
        "clip_grad_norm": 1.0,
    },
    "schedule": {"name": "linear", "warmup_epochs": 5.0, "end_lr": 1e-5},
    "augment": {
        "pad_crop": 4,
        "hflip": True,
        "randaugment_n": 2,
        "randaugment_m": 10.0,
        "mixup_alpha": 0.5,
    },
    "train": {"epochs": 200, "batch_size": 512},
}

CIFAR100: dict[str, Any] = copy.deepcopy(CIFAR10)
CIFAR100["data"]["dataset"] = "cifar100"
CIFAR100["augment"]["randaugment_m"] = 15.0

PRESETS = {
    "digits": DIGITS,
    "mnist": MNIST,
    "mnist5k": {
        **copy.deepcopy(MNIST),
        "data": {"dataset": "mnist5k"},
        "train": {"epochs": 30, "batch_size": 128, "label_smoothing": 0.1},
    },
    "fashion-mnist": FASHION_MNIST,
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
}

# Fine-tuning (paper, "Fine-tuning" in the appendix): SGD momentum 0.9, batch 512, global-norm
# clipping at 1, cosine decay after a linear warmup, no weight decay, the head reset.
FINETUNE: dict[str, Any] = {
    "optim": {
        "name": "sgd",
        "lr": 0.003,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "clip_grad_norm": 1.0,
    },
    "schedule": {"name": "cosine", "warmup_steps": 500},
    "augment": {"random_resized_crop": True, "crop_scale": [0.08, 1.0], "hflip": True},
    "train": {"steps": 10_000, "batch_size": 512},
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str | None = None) -> TrainConfig:
    """The built-in recipe for data set ``name`` (``None``: digits); other data sets get the
    generic defaults with ``data.dataset`` set and a model chosen by image size."""
    if name is None:
        name = "digits"
    key = name.lower().replace("_", "-")
    if key in PRESETS:
        return TrainConfig.from_dict(PRESETS[key])
    return TrainConfig.from_dict({"data": {"dataset": name}})


def finetune_config(
    checkpoint: str, dataset: str, img_size: int | None = None, base: TrainConfig | None = None
) -> TrainConfig:
    """The fine-tuning recipe for ``checkpoint`` on ``dataset`` (optionally at ``img_size``).

    With ``base`` (a loaded config file) only the model and data keys are set on it.
    """
    if not checkpoint:
        raise ConfigError("fine-tuning needs a checkpoint (--from CHECKPOINT)")
    data = base.to_dict() if base is not None else TrainConfig.from_dict(FINETUNE).to_dict()
    data["model"]["pretrained"] = checkpoint
    data["model"]["name"] = "auto"
    data["data"]["dataset"] = dataset
    if img_size is not None:
        data["model"]["img_size"] = img_size
    return TrainConfig.from_dict(data)


def flag_overrides(**flags: Any) -> list[str]:
    """Plain CLI flags (``epochs=3``) as dotted overrides (``train.epochs=3``); None is skipped."""
    keys = {
        "model": "model.name",
        "dataset": "data.dataset",
        "epochs": "train.epochs",
        "steps": "train.steps",
        "batch_size": "train.batch_size",
        "lr": "optim.lr",
        "seed": "train.seed",
        "out": "run.out",
        "device": "train.device",
        "precision": "train.precision",
        "img_size": "model.img_size",
        "skip_bad_images": "data.skip_bad_images",
    }
    unknown = sorted(set(flags) - set(keys))
    if unknown:
        raise ConfigError(f"unknown flag(s) {unknown}")
    # json.dumps quotes strings so that YAML reads paths like "1e3" or "null" as text
    # an absent on/off flag (False) leaves the config file's value alone; `is` because
    # 0 == False, and a 0 (--epochs 0, --seed 0) must reach the config to be used or refused
    return [
        f"{keys[k]}={json.dumps(v)}" for k, v in flags.items() if v is not None and v is not False
    ]


def assemble_config(
    config_file: str | None = None,
    dataset: str | None = None,
    sets: Sequence[str] = (),
    **flags: Any,
) -> TrainConfig:
    """The config of ``mlpmixer train``: a file or the data set's preset, then flags, then ``--set``.

    ``--model NAME`` without a config file means that registered model as it is: the preset's
    architecture overrides (e.g. the digits default's re-sizing) are dropped.
    """
    config = load_config(config_file) if config_file else preset(dataset)
    if flags.get("model") and not config_file:
        config = config.replace(model={"overrides": {}, "img_size": None})
    return config.override([*flag_overrides(dataset=dataset, **flags), *sets])
