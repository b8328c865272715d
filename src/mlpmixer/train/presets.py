"""Built-in recipes: the config ``mlpmixer train --dataset NAME`` (and ``finetune``) starts from.

Every recipe is written once, as a commented YAML file in the repository's ``configs/``
folder, which is shipped inside the package as ``mlpmixer/configs`` (package data); this
module only finds and loads those files.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING

from ..data.source import dataset_key
from ..errors import ConfigError
from ..models import model_config
from .config import Assignment, TrainConfig, load_config, override_class

if TYPE_CHECKING:
    from ..data.source import DataFacts

log = logging.getLogger(__name__)

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
    key = dataset_key(name)
    if key in PRESETS:
        return load_recipe(PRESETS[key])
    return TrainConfig.from_dict({"data": {"dataset": name}})


def _recipe_sizes(config: TrainConfig) -> dict[str, object]:
    """The image size and patch size ``config`` trains at (its model's when not set)."""
    if config.model.name == "auto":
        return {"img_size": config.model.img_size}
    native = model_config(config.model.name)
    size = config.model.img_size or list(native.img_size)
    patch = config.model.overrides.get("patch_size", list(native.patch_size))
    return {"img_size": size, "overrides": {"patch_size": patch}}


def _with_model(config: TrainConfig, model: str) -> TrainConfig:
    """The recipe with another model at the recipe's sizes: the image size and the patch
    grid stay (digits at 16 px in 4x4 patches), the recipe model's widths and depth go."""
    sizes = _recipe_sizes(config)
    if "overrides" in sizes and override_class(model) is not override_class(config.model.name):
        del sizes["overrides"]  # the patch grid is the recipe family's: a zoo model has its own
    return config.replace(model={"name": model, "overrides": {}, **sizes})


def resolve_config(
    config: TrainConfig | None = None,
    *,
    dataset: str | None = None,
    model: str | None = None,
    overrides: Sequence[Assignment] = (),
) -> TrainConfig:
    """The config a run starts from: what `mlpmixer.train.train` and ``mlpmixer train`` use.

    1. ``config`` as given; without one, the recipe of ``dataset`` (`preset`; ``None``:
       digits, configs/digits.yaml); for a class folder the image size, model, batch size
       and epochs are derived from the data (`data_defaults`, logged);
    2. ``dataset`` and ``model`` replace the config's; ``model`` without ``config`` keeps the
       recipe's image size and patch size (its widths and depth belong to its own model);
    3. ``overrides`` (``--set`` style dotted assignments) last: they win over everything.
    """
    facts = None
    if config is None:
        config = preset(dataset)
        if dataset_key(dataset or "digits") not in PRESETS:
            config, facts = _fit_to_data(config)
        if model:
            config = _with_model(config, model)
    else:
        keys = {"data.dataset": dataset, "model.name": model}
        config = config.override([(k, v) for k, v in keys.items() if v])
    if overrides:
        config = config.override(list(overrides))
    if facts is not None:  # said once the flags are in: the values the run will use
        from .data_defaults import describe_fit

        log.info("%s", describe_fit(config, facts))
    return config


def _fit_to_data(
    config: TrainConfig, finetune: bool = False
) -> tuple[TrainConfig, DataFacts | None]:
    """``config`` sized for its data (a class folder, shards or ``hf:NAME``) and the data's
    facts; ``finetune``: only batch and length (the checkpoint decides model and size)."""
    from .data_defaults import data_facts, fit_finetune_to_folder, fit_to_folder

    facts = data_facts(config)
    if facts is None:
        return config, None
    fit = fit_finetune_to_folder if finetune else fit_to_folder
    return fit(config, facts), facts


# Data sets whose classes a crop or a mirror image can change (a 6 cropped to a 0, a mirrored
# 2...): fine-tuning on them takes the augmentation of their own recipe, not the ImageNet
# inception crop (down to 8% of the image) and flips of configs/finetune.yaml.
OWN_AUGMENTATION = ("digits", "mnist5k", "mnist", "fashion-mnist")


def finetune_config(
    checkpoint: str,
    dataset: str,
    img_size: int | tuple[int, int] | None = None,
    base: TrainConfig | None = None,
    overrides: Sequence[Assignment] = (),
) -> TrainConfig:
    """The fine-tuning recipe for ``checkpoint`` on ``dataset`` (optionally at ``img_size``),
    then ``overrides`` (``--set`` style, as `resolve_config`'s).

    Without ``base``: configs/finetune.yaml (the paper's), with the augmentation of the data
    set's own recipe for the `OWN_AUGMENTATION` sets; for a class folder the batch size and
    steps are sized from the data (`data_defaults.fit_finetune_to_folder`, logged: the
    recipe's batch of 512 is more than a small folder holds). With ``base`` (a loaded config
    file) only the model and data keys are set on it.
    """
    if not checkpoint:
        raise ConfigError("fine-tuning needs a checkpoint (--checkpoint CHECKPOINT)")
    data = (base if base is not None else load_recipe(FINETUNE)).to_dict()
    key = dataset_key(dataset)
    if base is None and key in OWN_AUGMENTATION:
        data["augment"] = preset(key).to_dict()["augment"]
    data["model"]["pretrained"] = checkpoint
    data["model"]["name"] = "auto"
    data["data"]["dataset"] = dataset
    if img_size is not None:
        data["model"]["img_size"] = img_size
    config, facts = TrainConfig.from_dict(data), None
    if base is None and key not in PRESETS:
        from ..data.outline import dataset_outline

        dataset_outline(dataset)  # an unknown name is refused before the folder is read
        config, facts = _fit_to_data(config, finetune=True)
    if overrides:
        config = config.override(list(overrides))
    if facts is not None:  # said once the flags are in: the values the run will use
        from .data_defaults import describe_finetune_fit

        log.info("%s", describe_finetune_fit(config, facts))
    return config
