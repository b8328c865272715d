"""The data source interface: how a kind of data set (built-in arrays, class folders, shards,
Hugging Face sets, or one of your own) is found, outlined, loaded and viewed.

A source is one object behind the `DataSource` protocol. `mlpmixer.data.build.find_source`
turns the ``--dataset`` text into one; `build_dataset`, the training run and ``mlpmixer eval``
then ask it, never the data set object, what it can do (``augments``, ``streams``...).
`register_source` adds a kind of your own (docs/architecture.md, "Adding a data source").

Views: `DataSource.train_view` and `DataSource.eval_view` return new data set objects (the
loaded split is left as it is, float32 images: the public API).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from torch.utils.data import Dataset

from ..download import cache_dir
from ..errors import ConfigError
from ..models.config import INTERPOLATIONS, to_pair
from .info import DatasetInfo

if TYPE_CHECKING:
    from .transforms import SampleAugment

NAMED = ("digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "cifar100")
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "mnist_5k": "mnist5k",
}
DEFAULT_FILE_IMG_SIZE = 224  # image files vary in size; this is the paper's resolution


def dataset_key(text: str) -> str:
    """The canonical spelling of a data set name (``"CIFAR-10"`` -> ``"cifar10"``,
    ``"fashion_mnist"`` -> ``"fashion-mnist"``); a path or ``hf:NAME`` comes back lower-cased,
    matching no name. The one rule for recipes (`mlpmixer.train.presets`) and loading."""
    lowered = str(text).lower()
    return _ALIASES.get(lowered, lowered)


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$MLPMIXER_DATA``, else ``<mlpmixer cache>/data``."""
    if root is not None:
        return Path(root).expanduser()
    if "MLPMIXER_DATA" in os.environ:
        return Path(os.environ["MLPMIXER_DATA"]).expanduser()
    return cache_dir() / "data"


@dataclass(frozen=True)
class LoadOptions:
    """How to load a split, checked on construction (a bad value is a `ConfigError`).

    ``img_size`` (h, w) and ``in_chans`` (1 or 3): ``None`` keeps the source's native values
    (`shape`); ``crop_pct`` applies to evaluation splits (`crop`); ``root``: where named sets
    live (`named_dir`); ``source_split``: the data set's own split name (shards, ``hf:``).
    """

    img_size: tuple[int, int] | None = None
    in_chans: int | None = None
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    root: Path | None = None  # None: `data_root()`
    download: bool = True
    val_fraction: float = 0.1
    seed: int = 0
    skip_bad_images: bool = False
    source_split: str | None = None

    def __post_init__(self) -> None:
        if self.img_size is not None:
            object.__setattr__(self, "img_size", to_pair(self.img_size, "img_size"))
        if self.in_chans not in (None, 1, 3):
            raise ConfigError(f"in_chans must be 1 or 3 (or None: native), got {self.in_chans!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}"
            )
        if not 0.0 < self.crop_pct <= 1.0:
            raise ConfigError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")

    def shape(
        self, native_size: tuple[int, int] = (DEFAULT_FILE_IMG_SIZE,) * 2, native_chans: int = 3
    ) -> tuple[tuple[int, int], int]:
        """((h, w), channels) to load at: the asked ones, else the source's native ones."""
        size = self.img_size or (int(native_size[0]), int(native_size[1]))
        return size, self.in_chans or native_chans

    def named_dir(self, name: str) -> Path:
        """Where the named set ``name`` lives: ``root/name`` (`data_root`)."""
        return data_root(self.root) / name

    def crop(self, split: str) -> float:
        """The centre crop of ``split``: training images are cropped by the training views."""
        return 1.0 if split == "train" else self.crop_pct


class DataSplit(NamedTuple):
    """One loaded split: the data set (items (float32 (C, H, W) in [0, 1], int label)) and its
    `DatasetInfo`."""

    dataset: Dataset
    info: DatasetInfo


@dataclass(frozen=True)
class DataOutline:
    """``name`` as given; ``num_classes`` and ``train_images`` where known without loading."""

    name: str
    num_classes: int | None = None
    train_images: int | None = None


@dataclass(frozen=True)
class DataFacts:
    """What a run's defaults are sized from (train/data_defaults.py): training images,
    classes, median image side in pixels."""

    train_images: int
    classes: int
    side: int


@runtime_checkable
class DataSource(Protocol):
    """One data set of one kind, named by the ``--dataset`` text it was found from.

    Attributes: ``name`` (as given, `DatasetInfo.name`); ``native_size``, the (h, w) it loads
    at without ``img_size`` (``None``: known only once loaded); ``in_memory`` (arrays in RAM:
    loader workers gain nothing); ``named_splits`` (takes ``LoadOptions.source_split``);
    ``streams`` (reads sequentially, as shards: the run streams global batches);
    ``augments`` (`train_view` crops, flips and RandAugments per sample and its items are
    keyed ``(epoch, index)``).
    """

    name: str
    native_size: tuple[int, int] | None
    in_memory: bool
    named_splits: bool
    streams: bool
    augments: bool

    def load(self, split: str, options: LoadOptions) -> DataSplit:
        """``split`` ("train" or "test") loaded as ``options`` says."""
        ...

    def outline(self, val_fraction: float, seed: int) -> DataOutline:
        """What is known without loading an image (refusals come before anything is built)."""
        ...

    def facts(self, train_split: str | None, val_fraction: float, seed: int) -> DataFacts | None:
        """The size facts of the training split (images, classes, median side; headers only),
        or None where the source has none (a data set with a recipe, arrays)."""
        ...

    def train_view(
        self, dataset: Dataset, augment: SampleAugment, seed: int, skip_log: Path | None
    ) -> Dataset:
        """A new data set of the training samples (uint8 when ``augments``)."""
        ...

    def eval_view(self, dataset: Dataset, skip_log: Path | None) -> Dataset:
        """A new data set of the evaluation samples (uint8 where decoding is in workers)."""
        ...


class SourceBase:
    """Defaults for a `DataSource`: in-memory-agnostic, no split names, no per-sample
    augmentation (views are the data set itself). A source of your own subclasses it and
    writes `load` (and `outline` where it knows more than its name)."""

    native_size: tuple[int, int] | None = None
    in_memory = False
    named_splits = False
    streams = False
    augments = False

    def __init__(self, name: str) -> None:
        self.name = name

    def load(self, split: str, options: LoadOptions) -> DataSplit:
        raise NotImplementedError

    def outline(self, val_fraction: float, seed: int) -> DataOutline:
        return DataOutline(self.name)

    def facts(self, train_split: str | None, val_fraction: float, seed: int) -> DataFacts | None:
        return None

    def train_view(
        self, dataset: Dataset, augment: SampleAugment, seed: int, skip_log: Path | None
    ) -> Dataset:
        if augment.inception_crop or augment.hflip or augment.randaug_layers:
            raise ConfigError(
                f"data set {self.name} does not do the per-sample crop, flip and "
                "RandAugment (augment.random_resized_crop, hflip, randaugment_n); turn them off"
            )
        return dataset

    def eval_view(self, dataset: Dataset, skip_log: Path | None) -> Dataset:
        return dataset


def uint8_view(dataset: Any, augment: SampleAugment | None = None, seed: int = 0) -> Dataset:
    """A copy of an image-file data set (folders, shards, ``hf:``) switched to its uint8
    worker samples: training ones (``augment``, ``seed``) or evaluation ones. The loaded
    split keeps its float32 items."""
    view = copy.copy(dataset)
    if augment is not None:
        view.set_train_augment(augment, seed)
    else:
        view.use_uint8()
    return view


Claim = Callable[[str], "DataSource | None"]
_REGISTERED: list[Claim] = []


def register_source(claim: Claim) -> Callable[[], None]:
    """Add a kind of data source: ``claim(text)`` returns a `DataSource` for the
    ``--dataset`` texts it recognises, else ``None``. Registered claims are asked before the
    built-in kinds, newest first. Returns a function that removes the claim again."""
    _REGISTERED.insert(0, claim)

    def remove() -> None:
        if claim in _REGISTERED:
            _REGISTERED.remove(claim)

    return remove


def registered_source(text: str) -> DataSource | None:
    """The source a registered claim makes of ``text``, or ``None``."""
    for claim in _REGISTERED:
        source = claim(text)
        if source is not None:
            return source
    return None
