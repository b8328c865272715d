"""The run's steps before the loop, in order, each returning a named object:

1. `plan_inputs`: the model's name and the images' size, channels, crop and resampling,
   decided once from the config, the checkpoint being fine-tuned and the data source's
   native size (`InputPlan`);
2. `build_data`: both splits at that plan (`RunData`);
3. `build_model`: the model for that data (`RunModel`);
4. `build_loaders`: the training and evaluation loaders over the source's views
   (`RunLoaders`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..checkpoints import load_model
from ..data import DatasetInfo
from ..data.build import find_source
from ..data.loading import EpochKeyedBatches, default_workers, loader_options
from ..data.shards import LANES, ShardStream
from ..data.source import DataSource, LoadOptions
from ..errors import ConfigError
from ..layout import SKIPPED_FILE, checkpoint_label
from ..models import MlpFamilyModel, create_model, model_config
from ..models.config import to_pair
from .augment import sample_augment
from .config import TrainConfig
from .data_defaults import model_for_side
from .distributed import DistInfo
from .sampler import ShardSampler, StreamBatchPlan, TrainBatchSampler


@dataclass(frozen=True)
class InputPlan:
    """What the data is loaded at and which model reads it, decided before either is built.

    ``model_name``: a registered name (``None``: chosen by `model_for_side` once a source
    without a native size is loaded), or the fine-tuned checkpoint's label; ``base``: the
    checkpoint's model when fine-tuning; ``img_size`` (h, w) (``None``: such a source's
    own); ``crop_pct`` and ``eval_interpolation`` are stored in the model's config for
    eval/predict to repeat.
    """

    model_name: str | None
    base: MlpFamilyModel | None
    img_size: tuple[int, int] | None
    in_chans: int | None
    crop_pct: float
    interpolation: str
    eval_interpolation: str


@dataclass(frozen=True)
class RunData:
    """The source and its two splits; ``info`` is the training split's, listing the files
    left out of both (``data.skip_bad_images``)."""

    source: DataSource
    train_set: Dataset
    test_set: Dataset
    info: DatasetInfo


@dataclass(frozen=True)
class RunModel:
    """The model (on the CPU, initialised) and the name the run reports and records."""

    model: MlpFamilyModel
    name: str


@dataclass(frozen=True)
class RunLoaders:
    """The training loader, its batch plan (steps per epoch, epoch and position; the shards'
    global batch stream) and the evaluation loader (padded to equal shards per process)."""

    train: DataLoader
    sampler: TrainBatchSampler | StreamBatchPlan
    eval: DataLoader


def plan_inputs(config: TrainConfig, source: DataSource) -> InputPlan:
    """Sizes resolved once: ``model.img_size``, else the fine-tuned checkpoint's, else the
    named model's native size, else the source's (with ``model.name: auto``, the model is
    `model_for_side` of it: the rule docs/training.md describes)."""
    m, d = config.model, config.data
    base = load_model(m.pretrained) if m.pretrained else None  # its architecture decides
    if base is not None:
        name: str | None = checkpoint_label(m.pretrained)  # type: ignore[arg-type]
        size: Any = m.img_size or base.config.img_size
        in_chans = d.in_chans or base.config.in_chans
        crop, interpolation = d.eval_crop_pct or base.config.crop_pct, base.config.interpolation
    else:
        name = None if m.name == "auto" else m.name
        size = m.img_size or (model_config(name).img_size if name else source.native_size)
        in_chans, crop, interpolation = d.in_chans, d.eval_crop_pct or 1.0, "bilinear"
    size = None if size is None else to_pair(size, "img_size")
    if name is None and size is not None:
        name = model_for_side(min(size))
    interpolation = d.interpolation or interpolation
    return InputPlan(name, base, size, in_chans, crop, interpolation,
                     d.eval_resize or interpolation)  # fmt: skip


def build_data(config: TrainConfig, plan: InputPlan, source: DataSource | None = None) -> RunData:
    """Both splits of ``data.dataset`` at ``plan``'s size, channels, crop and resampling."""
    d = config.data
    source = source or find_source(d.dataset)
    common = {
        "img_size": plan.img_size, "in_chans": plan.in_chans, "root": d.root,
        "download": d.download, "val_fraction": d.val_fraction, "seed": config.train.seed,
        "skip_bad_images": d.skip_bad_images,
    }  # fmt: skip
    train_options = LoadOptions(
        **common, source_split=d.train_split, interpolation=plan.interpolation
    )  # type: ignore[arg-type]
    test_options = LoadOptions(
        **common, source_split=d.val_split, crop_pct=plan.crop_pct,
        interpolation=plan.eval_interpolation,
    )  # type: ignore[arg-type]  # fmt: skip
    for split in (d.train_split, d.val_split):
        if split is not None and not source.named_splits:
            raise ConfigError(
                f"a split name ({split!r}) applies to hf:NAME data sets and shards, not {d.dataset}"
            )
    train_set, train_info = source.load("train", train_options)
    test_set, test_info = source.load("test", test_options)
    # the run reports every file left out, of both splits, with the training info
    info = dataclasses.replace(train_info, skipped=train_info.skipped + test_info.skipped)
    return RunData(source, train_set, test_set, info)


def build_model(config: TrainConfig, plan: InputPlan, info: DatasetInfo) -> RunModel:
    """A fresh model for the data (its classes, channels, mean/std and size), or the
    checkpoint being fine-tuned with a new head, resized to the data's size."""
    crop, evaluation = plan.crop_pct, plan.eval_interpolation
    if plan.base is not None:
        return _finetuned(config, plan.base, info, crop, evaluation)
    name = plan.model_name or model_for_side(min(info.img_size))
    # the preprocessing used here goes into the model's config, for eval/predict to repeat it
    overrides = {
        "img_size": info.img_size,
        **info.model_fields(),
        "crop_pct": crop,
        "interpolation": evaluation,
        **config.model.overrides,
    }
    try:
        model = create_model(name, **overrides)
    except ConfigError as err:
        raise ConfigError(f"model {name} for data {info.name} ({info.img_size}): {err}") from err
    return RunModel(model, name)


def _finetuned(
    config: TrainConfig, base: MlpFamilyModel, info: DatasetInfo, crop: float, evaluation: str
) -> RunModel:
    source = config.model.pretrained
    assert source is not None
    if info.in_chans != base.config.in_chans:
        raise ConfigError(
            f"data.in_chans={info.in_chans} but the checkpoint {source} expects "
            f"{base.config.in_chans} channels"
        )
    model = load_model(
        source, reset_head=True, num_classes=info.num_classes, class_names=info.class_names,
        **config.model.overrides,
    )  # fmt: skip
    if tuple(model.config.img_size) != tuple(info.img_size):
        model = model.resize(info.img_size)  # block-diagonal token-mixing (paper, appendix)
    model.config = model.config.replace(crop_pct=crop, interpolation=evaluation)
    return RunModel(model, checkpoint_label(source))


class _PaddedEval(Dataset):
    """The eval split padded to ``length`` examples; padding repeats examples with label -1."""

    def __init__(self, dataset: Dataset, length: int) -> None:
        self.dataset, self.length, self.n = dataset, length, len(dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index % self.n]
        return image, (label if index < self.n else -1)


def build_loaders(
    config: TrainConfig, dist: DistInfo, device: torch.device, data: RunData, run_dir: Path
) -> RunLoaders:
    """Loaders over the source's training view (crop/flip/RandAugment per sample, on uint8,
    for every built-in source) and evaluation view; shards replace bad samples as they meet
    them and record them in ``RUN/skipped_images.txt``."""
    t, source = config.train, data.source
    workers = config.data.num_workers
    if workers is None:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))
        workers = default_workers(source.in_memory, per_node)
    options = loader_options(workers, device.type == "cuda")
    augment = sample_augment(config.augment, config.data.train_decode, config.data.train_resize)
    skip_log = run_dir / SKIPPED_FILE
    train_set = source.train_view(data.train_set, augment, t.seed, skip_log)
    test_set = source.eval_view(data.test_set, skip_log)
    if source.streams:
        return _stream_loaders(config, dist, options, train_set, test_set)
    sampler = TrainBatchSampler(
        len(train_set), t.batch_size, t.seed, dist.rank, dist.world_size, t.grad_accum
    )  # type: ignore[arg-type]
    batches: Sampler = EpochKeyedBatches(sampler) if source.augments else sampler
    train_loader = DataLoader(train_set, batch_sampler=batches, **options)
    eval_batch = max(1, min(sampler.micro_batch_size * 2, 1024))
    return RunLoaders(
        train_loader, sampler, _padded_eval_loader(test_set, eval_batch, dist, options)
    )


def _padded_eval_loader(
    test_set: Dataset, batch: int, dist: DistInfo, options: dict[str, Any]
) -> DataLoader:
    padded = padded_eval_length(len(test_set), dist.world_size)  # type: ignore[arg-type]
    return DataLoader(
        _PaddedEval(test_set, padded), batch_size=batch,
        sampler=ShardSampler(padded, dist.rank, dist.world_size), **options,
    )  # fmt: skip


def _stream_loaders(
    config: TrainConfig, dist: DistInfo, options: dict[str, Any], train_set: Any,
    test_set: Any,
) -> RunLoaders:  # fmt: skip
    """Shards: each process streams its share of every global batch (`StreamBatchPlan`).

    Workers are re-created each epoch (the stream's epoch and start position travel with
    it), and their count is rounded down to a divisor of `LANES`, so each reads whole lanes.
    """
    t = config.train
    workers = max(
        d for d in range(1, LANES + 1) if LANES % d == 0 and d <= max(1, options["num_workers"])
    )
    options = {
        **options,
        "num_workers": workers if options["num_workers"] else 0,
        "persistent_workers": False,
    }
    plan = StreamBatchPlan(
        train_set, t.batch_size, t.seed, dist.rank, dist.world_size, t.grad_accum
    )  # type: ignore[arg-type]
    train_loader = DataLoader(plan.stream, batch_size=plan.micro_batch_size, **options)
    padded = padded_eval_length(len(test_set), dist.world_size)
    eval_batch = max(1, min(plan.micro_batch_size * 2, 1024))
    eval_stream = ShardStream(
        test_set, seed=t.seed, shuffle=False, rank=dist.rank, world_size=dist.world_size,
        micro_batch=eval_batch, per_rank=padded // dist.world_size,
    )  # fmt: skip
    return RunLoaders(train_loader, plan, DataLoader(eval_stream, batch_size=eval_batch, **options))


def padded_eval_length(num_examples: int, world_size: int) -> int:
    """Length of the eval set padded so every process gets the same number of examples."""
    return math.ceil(num_examples / world_size) * world_size
