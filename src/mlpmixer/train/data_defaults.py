"""Defaults sized from the data: image size, model, batch size and epochs for a data set
without a recipe (a class folder, shards, ``hf:NAME``).

A built-in data set has a recipe (configs/<name>.yaml) tuned for it. Other data has none,
and the generic defaults (a 224-pixel Mixer-S/16, batch 128, 30 epochs) fit ImageNet, not
90 JPEGs of 64 pixels. `data_facts` asks the data's source for its facts (`DataSource.facts`, the same for every
source: training images, classes and the median shorter side of a few images, headers only;
for shards the index's count and the sides ``data pack`` recorded; data/facts.py), and `fit_to_folder` picks:

* image size and model: the registered small Mixer whose native size fits the images (8,
  28, 32 pixels; 224 with Mixer-S/16 for photos of 160+ pixels), narrowed to the digits
  recipe's widths (`NARROW`) below `SMALL_DATA` training images;
* batch size: at most a quarter of the training images (a power of two), so that an epoch
  has several steps and a batch never exceeds the data;
* epochs: enough for about `MIN_STEPS` optimizer steps (at least the recipe's, at most
  `MAX_EPOCHS`).

Fine-tuning (`fit_finetune_to_folder`) keeps the checkpoint's model and size and sizes the
rest the same way: the batch (configs/finetune.yaml's 512 is more than a small folder
holds) and the recipe's 10,000 steps, at most `MAX_EPOCHS` epochs of them.

Every value is a default: ``--img-size``, ``--model``, ``--batch-size``, ``--epochs`` and
``--steps`` (or ``--set``) replace it.
"""

from __future__ import annotations

import math

from ..data.source import DataFacts
from ..errors import DataError
from ..models import model_config
from .config import TrainConfig

SMALL_MODELS = ("mixer_t2_8", "mixer_t4_28", "mixer_s4_32")  # by native image size
LARGE_MODEL, LARGE_FROM = "mixer_s16_224", 160  # photos of >= 160 px: the paper's resolution
SMALL_DATA = 5000  # fewer training images than this: a narrow model (less to fit, 20x faster)
NARROW = {"hidden_dim": 64, "channels_mlp_dim": 256, "tokens_mlp_dim": 32, "num_blocks": 4}
MIN_STEPS = 300  # optimizer steps a tiny data set gets at least
MAX_EPOCHS = 200


def data_facts(config: TrainConfig) -> DataFacts | None:
    """The facts of the data set ``config`` names, as its source reads them (`DataSource.facts`:
    a class folder, shard index or URL, ``hf:NAME``); None for a source without them, or text
    that names no source (the loader reports it)."""
    from ..data.build import find_source

    d = config.data
    try:
        source = find_source(d.dataset)
    except DataError:  # no data set there: the loader says so, in its words
        return None
    return source.facts(d.train_split, d.val_fraction, config.train.seed)


def model_for_side(side: int) -> str:
    """The registered model whose native size fits images of ``side`` pixels."""
    if side >= LARGE_FROM:
        return LARGE_MODEL
    fitting = [n for n in SMALL_MODELS if model_config(n).img_size[0] <= side]
    return fitting[-1] if fitting else SMALL_MODELS[0]


def batch_for(facts: DataFacts, recipe_batch: int) -> int:
    """At most the recipe's batch and a quarter of the training images, a power of two."""
    limit = max(1, facts.train_images // 4)
    return min(recipe_batch, 2 ** int(math.log2(limit)))


def fit_to_folder(config: TrainConfig, facts: DataFacts) -> TrainConfig:
    """``config`` with image size, model, batch size and epochs sized for ``facts``."""
    name = model_for_side(facts.side)
    size = model_config(name).img_size[0]
    batch = batch_for(facts, config.train.batch_size)
    steps_per_epoch = max(1, facts.train_images // batch)  # the last partial batch is dropped
    epochs = min(MAX_EPOCHS, max(config.train.epochs, math.ceil(MIN_STEPS / steps_per_epoch)))
    narrow = facts.train_images < SMALL_DATA
    model = {"name": name, "img_size": size, "overrides": dict(NARROW) if narrow else {}}
    return config.replace(model=model, train={"batch_size": batch, "epochs": epochs})


def describe_fit(config: TrainConfig, facts: DataFacts) -> str:
    """A one-line account of the values ``config`` trains with (after the flags and
    ``--set``, which replace the defaults) and the facts the defaults came from."""
    m = config.model
    size = m.img_size if m.img_size is not None else list(model_config(m.name).img_size)
    if isinstance(size, (list, tuple)):
        size = size[0] if len(set(size)) == 1 else "x".join(str(v) for v in size)
    narrow = all(m.overrides.get(k) == v for k, v in NARROW.items())
    width = f" (narrowed: width {NARROW['hidden_dim']}, {NARROW['num_blocks']} blocks)"
    return (
        f"defaults from the data ({facts.train_images} training images, {facts.classes} "
        f"classes, images ~{facts.side} px): image size {size}, model {m.name}"
        f"{width if narrow else ''}, batch size {config.train.batch_size}, epochs "
        f"{config.train.epochs} (change with --img-size, --model, --batch-size, --epochs)"
    )


def fit_finetune_to_folder(config: TrainConfig, facts: DataFacts) -> TrainConfig:
    """The fine-tuning recipe ``config`` with its batch size and steps sized for ``facts``
    (the model and image size are the checkpoint's)."""
    batch = batch_for(facts, config.train.batch_size)
    steps_per_epoch = max(1, facts.train_images // batch)
    steps = config.train.steps or config.train.epochs * steps_per_epoch
    steps = min(steps, MAX_EPOCHS * steps_per_epoch)
    return config.replace(train={"batch_size": batch, "steps": max(steps, 1)})


def describe_finetune_fit(config: TrainConfig, facts: DataFacts) -> str:
    """`describe_fit` for fine-tuning: the batch size and length the run will use."""
    t = config.train
    length = f"steps {t.steps}" if t.steps else f"epochs {t.epochs}"
    return (
        f"defaults from the data ({facts.train_images} training images, {facts.classes} "
        f"classes, images ~{facts.side} px): batch size {t.batch_size}, {length} "
        "(change with --batch-size, --steps)"
    )
