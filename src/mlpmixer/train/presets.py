"""Built-in recipes: the config ``mlpmixer train --dataset NAME`` (and ``finetune``) starts from.

Every recipe is written once, as a commented YAML file in the repository's ``configs/``
folder, which is shipped inside the package as ``mlpmixer/configs`` (package data); this
module only finds and loads those files.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable

from ..errors import ConfigError
from .config import TrainConfig, load_config

# data set name (as --dataset spells it) -> recipe file configs/<stem>.yaml
PRESETS: dict[str, str] = {
    "digits": "digits",
    "mnist": "mnist",
    "mnist5k": "mnist5k",
    "fashion-mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
}
FINETUNE = "finetune"  # configs/finetune.yaml: the paper's fine-tuning recipe


def recipe_file(stem: str) -> Traversable:
    """The shipped recipe ``configs/<stem>.yaml``; a missing one is a `ConfigError`."""
    resource = importlib.resources.files("mlpmixer") / "configs" / f"{stem}.yaml"
    if not resource.is_file():
        raise ConfigError(f"no shipped recipe {stem!r}; shipped: {', '.join(recipe_names())}")
    return resource


def recipe_names() -> list[str]:
    """The stems of all shipped recipe files, sorted."""
    folder = importlib.resources.files("mlpmixer") / "configs"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_recipe(stem: str) -> TrainConfig:
    """The validated `TrainConfig` of the shipped recipe ``configs/<stem>.yaml``."""
    with importlib.resources.as_file(recipe_file(stem)) as path:
        return load_config(path)


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str | None = None) -> TrainConfig:
    """The built-in recipe for data set ``name`` (``None``: digits); other data sets get the
    generic defaults with ``data.dataset`` set and a model chosen by image size."""
    if name is None:
        name = "digits"
    key = name.lower().replace("_", "-")
    if key in PRESETS:
        return load_recipe(PRESETS[key])
    return TrainConfig.from_dict({"data": {"dataset": name}})


def finetune_config(
    checkpoint: str, dataset: str, img_size: int | None = None, base: TrainConfig | None = None
) -> TrainConfig:
    """The fine-tuning recipe for ``checkpoint`` on ``dataset`` (optionally at ``img_size``).

    With ``base`` (a loaded config file) only the model and data keys are set on it.
    """
    if not checkpoint:
        raise ConfigError("fine-tuning needs a checkpoint (--from CHECKPOINT)")
    data = (base if base is not None else load_recipe(FINETUNE)).to_dict()
    data["model"]["pretrained"] = checkpoint
    data["model"]["name"] = "auto"
    data["data"]["dataset"] = dataset
    if img_size is not None:
        data["model"]["img_size"] = img_size
    return TrainConfig.from_dict(data)
