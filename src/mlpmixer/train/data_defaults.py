"""Defaults sized from the data: image size, model, batch size and epochs for a data set
without a recipe (a class folder, shards, ``hf:NAME``).

A built-in data set has a recipe (configs/<name>.yaml) tuned for it. Other data has none,
and the generic defaults (a 224-pixel Mixer-S/16, batch 128, 30 epochs) fit ImageNet, not
90 JPEGs of 64 pixels. `data_facts` summarises the data, the same for every source (training
images, classes and the median shorter side of a few images, headers only; for shards the
index's count and the sides ``data pack`` recorded), and `fit_to_folder` picks:

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

import io
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.images import open_image
from ..errors import DataError
from ..models import model_config
from .config import TrainConfig

SMALL_MODELS = ("mixer_t2_8", "mixer_t4_28", "mixer_s4_32")  # by native image size
LARGE_MODEL, LARGE_FROM = "mixer_s16_224", 160  # photos of >= 160 px: the paper's resolution
SMALL_DATA = 5000  # fewer training images than this: a narrow model (less to fit, 20x faster)
NARROW = {"hidden_dim": 64, "channels_mlp_dim": 256, "tokens_mlp_dim": 32, "num_blocks": 4}
MIN_STEPS = 300  # optimizer steps a tiny data set gets at least
MAX_EPOCHS = 200
SIZE_SAMPLE = 32  # image headers read to estimate the pixel size


@dataclass(frozen=True)
class FolderFacts:
    """What the defaults are derived from: training images, classes, median image side."""

    train_images: int
    classes: int
    side: int


def folder_facts(directory: Path, val_fraction: float, seed: int) -> FolderFacts | None:
    """The facts of an image folder, or None if ``directory`` is not one (errors come later,
    from the data loader, with their own messages)."""
    from ..data.folder import folder_split, is_image_folder

    if not is_image_folder(directory):
        return None
    try:
        files, _, _, _, names = folder_split(directory, "train", val_fraction, seed)
    except Exception:  # an empty or odd folder: the data loader reports it properly
        return None
    step = max(1, len(files) // SIZE_SAMPLE)
    side = _median_side(files[::step][:SIZE_SAMPLE])
    return None if side is None else FolderFacts(len(files), len(names), side)


def _median_side(sources: Iterable[Any]) -> int | None:
    """The median shorter side of the images (paths or open files) that open; headers only."""
    sides = []
    for source in sources:
        try:
            with open_image(source) as image:  # the header only: no decoding
                sides.append(min(image.size))
        except DataError:  # an unreadable file is reported by the data loader
            continue
    return int(statistics.median(sides)) if sides else None


def shard_facts(dataset: str, train_split: str | None) -> FolderFacts | None:
    """The facts of a shard index: its training split's count and classes, and the median
    side `pack` recorded (``image_sides``); an index without it: the first shard's images."""
    from ..data.shards import read_index

    index = read_index(dataset)  # errors here are the data set's own: said now, clearly
    entries = index.splits.get(train_split or "train")
    if not entries:
        return None  # the data loader names the missing split
    recorded = index.image_sides.get(train_split or "train", {}).get("median")
    if recorded is None:
        from ..data.shards import parse_shard, read_bytes

        url = index.url(entries[0])
        data = read_bytes(url, limit=entries[0].nbytes, note="the size the index records")
        samples = parse_shard(data, url, entries[0].sha256, entries[0].count)
        recorded = _median_side(io.BytesIO(s.image) for s in samples[:SIZE_SAMPLE] if s.image)
    if recorded is None:
        return None
    return FolderFacts(sum(e.count for e in entries), len(index.class_names), recorded)


def hf_facts(dataset: str, train_split: str | None) -> FolderFacts | None:
    """The facts of ``hf:NAME``: its training split's size and classes, and the median side
    of `SIZE_SAMPLE` images spread over it."""
    from ..data.hf import _columns, load_hf_split

    table = load_hf_split(dataset, "train", train_split)
    image, label = _columns(table.features, dataset)
    step = max(1, len(table) // SIZE_SAMPLE)
    sides = [min(table[i][image].size) for i in range(0, len(table), step)[:SIZE_SAMPLE]]
    if not sides:
        return None
    names = table.features[label].names
    return FolderFacts(len(table), len(names), int(statistics.median(sides)))


def data_facts(config: TrainConfig) -> FolderFacts | None:
    """The facts of the data set ``config`` names, whatever its source (class folder, shard
    index or URL, ``hf:NAME``); None for a source without them (the loader reports it)."""
    from ..data.hf import PREFIX
    from ..data.shards import is_shard_source

    d = config.data
    if d.dataset.startswith(PREFIX):
        return hf_facts(d.dataset, d.train_split)
    if is_shard_source(d.dataset):
        return shard_facts(d.dataset, d.train_split)
    return folder_facts(Path(d.dataset).expanduser(), d.val_fraction, config.train.seed)


def model_for_side(side: int) -> str:
    """The registered model whose native size fits images of ``side`` pixels."""
    if side >= LARGE_FROM:
        return LARGE_MODEL
    fitting = [n for n in SMALL_MODELS if model_config(n).img_size[0] <= side]
    return fitting[-1] if fitting else SMALL_MODELS[0]


def batch_for(facts: FolderFacts, recipe_batch: int) -> int:
    """At most the recipe's batch and a quarter of the training images, a power of two."""
    limit = max(1, facts.train_images // 4)
    return min(recipe_batch, 2 ** int(math.log2(limit)))


def fit_to_folder(config: TrainConfig, facts: FolderFacts) -> TrainConfig:
    """``config`` with image size, model, batch size and epochs sized for ``facts``."""
    name = model_for_side(facts.side)
    size = model_config(name).img_size[0]
    batch = batch_for(facts, config.train.batch_size)
    steps_per_epoch = max(1, facts.train_images // batch)  # the last partial batch is dropped
    epochs = min(MAX_EPOCHS, max(config.train.epochs, math.ceil(MIN_STEPS / steps_per_epoch)))
    narrow = facts.train_images < SMALL_DATA
    model = {"name": name, "img_size": size, "overrides": dict(NARROW) if narrow else {}}
    return config.replace(model=model, train={"batch_size": batch, "epochs": epochs})


def describe_fit(config: TrainConfig, facts: FolderFacts) -> str:
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


def fit_finetune_to_folder(config: TrainConfig, facts: FolderFacts) -> TrainConfig:
    """The fine-tuning recipe ``config`` with its batch size and steps sized for ``facts``
    (the model and image size are the checkpoint's)."""
    batch = batch_for(facts, config.train.batch_size)
    steps_per_epoch = max(1, facts.train_images // batch)
    steps = config.train.steps or config.train.epochs * steps_per_epoch
    steps = min(steps, MAX_EPOCHS * steps_per_epoch)
    return config.replace(train={"batch_size": batch, "steps": max(steps, 1)})


def describe_finetune_fit(config: TrainConfig, facts: FolderFacts) -> str:
    """`describe_fit` for fine-tuning: the batch size and length the run will use."""
    t = config.train
    length = f"steps {t.steps}" if t.steps else f"epochs {t.epochs}"
    return (
        f"defaults from the data ({facts.train_images} training images, {facts.classes} "
        f"classes, images ~{facts.side} px): batch size {t.batch_size}, {length} "
        "(change with --batch-size, --steps)"
    )
