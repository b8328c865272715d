"""Sharded data sets: WebDataset tar shards + an index, read locally or from any fsspec URL.

Layout (written by `mlpmixer.data.pack.pack_shards`, readable by ``webdataset.WebDataset``)::

    OUT/index.json            {"format": "mlpmixer-shards", "version": 1, "class_names": [...],
                               "splits": {"train": [{"name": "train-000000.tar", "count": 1024,
                                                     "bytes": ..., "sha256": ...}, ...],
                                          "test": [...]}}
    OUT/train-000000.tar      KEY.jpg (the original encoded bytes) + KEY.cls (label, ASCII int)
    OUT/test-000000.tar       ...

The index is read first; every shard it lists must exist with its recorded size (checked at
start, so a missing or truncated shard fails before training, not hours into it); a shard's
SHA-256 is checked each time it is read. Shard names resolve against the index's folder,
so the same index works from a local folder, ``https://``, ``s3://`` or ``gs://`` (fsspec;
``s3fs``/``gcsfs`` must be installed for the last two).

`ShardDataset` is map-style in index order (evaluation, statistics); training reads
`ShardStream`, an iterable over one process's part of a seeded epoch order (see
`EpochOrder`), so every process reads a disjoint part and a resumed run starts at the exact
sample where the interrupted one stopped.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import io
import json
import logging
import math
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..errors import DataError, DownloadError
from .images import IMAGE_EXTENSIONS, load_image, resize_image

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
FORMAT = "mlpmixer-shards"
VERSION = 1
LABEL_KEY = "cls"
LANES = 16  # contiguous read streams per process; DataLoader workers dividing it read each once
IMAGE_KEYS = tuple(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
SKIP_HINT = "to replace undecodable samples instead: mlpmixer train --skip-bad-images"
INSTALL_HINT = "pip install 'mlpmixer[shards]'"


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the index lists it."""

    name: str
    count: int
    nbytes: int
    sha256: str


@dataclass(frozen=True)
class ShardIndex:
    """A parsed ``index.json``: where it lives, the class names and each split's shards."""

    base: str  # folder or URL the shard names are relative to
    class_names: tuple[str, ...]
    splits: dict[str, tuple[ShardEntry, ...]]

    def url(self, entry: ShardEntry) -> str:
        return (
            posixpath.join(self.base, entry.name)
            if "://" in self.base
            else str(Path(self.base) / entry.name)
        )


# --- locating and reading the index -----------------------------------------------------------


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as err:  # torch depends on it, so this is rare
        raise DataError(f"reading shards needs fsspec: {INSTALL_HINT}") from err
    return fsspec


def is_shard_source(text: str) -> bool:
    """Whether ``--dataset`` names shards: a URL, an index JSON, or a folder holding one."""
    if "://" in text:
        return True
    path = Path(text).expanduser()
    return (path.is_dir() and (path / INDEX_NAME).is_file()) or (
        path.is_file() and path.suffix == ".json"
    )


def index_location(text: str) -> str:
    """The index URL or path of a ``--dataset`` value (a folder means ``FOLDER/index.json``)."""
    if text.endswith(".json"):
        return text
    if "://" in text:
        return text.rstrip("/") + "/" + INDEX_NAME
    return str(Path(text).expanduser() / INDEX_NAME)


def _open_error(location: str, err: Exception, what: str) -> Exception:
    """`DataError` (exit 2) for something absent; `DownloadError` (exit 1) for a failed read."""
    cause = err.__cause__
    if isinstance(err, FileNotFoundError) and not isinstance(cause, OSError):
        return DataError(f"{what} {location} does not exist")
    # fsspec's HTTP back-end reports a refused connection as FileNotFoundError from it
    reason = cause if isinstance(err, FileNotFoundError) else err
    return DownloadError(f"cannot read {what} {location}: {type(reason).__name__}: {reason}")


def read_bytes(location: str, what: str = "shard") -> bytes:
    """The bytes at a path or fsspec URL; a clear error naming it when absent or unreachable."""
    try:
        with _fsspec().open(location, "rb") as handle:
            return handle.read()
    except ImportError as err:  # fsspec's http/s3/gs back-ends are optional packages
        raise DataError(f"{location}: {err}; {INSTALL_HINT} (s3: s3fs, gs: gcsfs)") from err
    except Exception as err:  # fsspec and its back-ends raise many types
        raise _open_error(location, err, what) from err


def _entry(raw: Any, where: str) -> ShardEntry:
    try:
        entry = ShardEntry(
            str(raw["name"]), int(raw["count"]), int(raw["bytes"]), str(raw["sha256"])
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{where}: malformed shard entry {raw!r} ({err})") from err
    if entry.count <= 0 or "/" in entry.name or entry.name.startswith("."):
        raise DataError(f"{where}: invalid shard entry {raw!r}")
    return entry


def parse_index(data: bytes, location: str) -> ShardIndex:
    """`ShardIndex` from the bytes of ``index.json``; `DataError` naming what is wrong."""
    try:
        raw = json.loads(data)
    except ValueError as err:
        raise DataError(f"{location}: not a valid shard index ({err})") from err
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{location}: not an mlpmixer shard index (format != {FORMAT!r})")
    if raw.get("version") != VERSION:
        raise DataError(
            f"{location}: shard index version {raw.get('version')!r}, expected {VERSION}"
        )
    names = raw.get("class_names")
    splits = raw.get("splits")
    if not isinstance(names, list) or not names or not isinstance(splits, dict):
        raise DataError(f"{location}: the index needs class_names and splits")
    parsed = {
        str(split): tuple(_entry(item, location) for item in entries)
        for split, entries in splits.items()
    }
    base = location.rsplit("/", 1)[0] if "://" in location else str(Path(location).parent)
    return ShardIndex(base, tuple(str(n) for n in names), parsed)


def read_index(text: str) -> ShardIndex:
    location = index_location(text)
    return parse_index(read_bytes(location, "shard index"), location)


def _listed_sizes(fs: Any, base: str) -> dict[str, int]:
    """{file name: size} of the index's folder, where one listing gives sizes (local, s3, gs)."""
    try:
        found = fs.ls(base, detail=True)
    except Exception:  # HTTP servers need not list folders: each shard is asked instead
        return {}
    sizes = ((posixpath.basename(str(e.get("name", "")).rstrip("/")), e.get("size")) for e in found)
    return {name: int(size) for name, size in sizes if size is not None}


def check_shards(index: ShardIndex, entries: tuple[ShardEntry, ...]) -> None:
    """Every listed shard exists with the size the index records (before any training)."""
    fs, _ = _fsspec().core.url_to_fs(index.base)
    listed = _listed_sizes(fs, index.base)  # one request for a bucket, not one per shard
    for entry in entries:
        url = index.url(entry)
        size = listed.get(entry.name)
        try:
            size = fs.info(url).get("size") if size is None else size
        except Exception as err:  # absent, unreachable, refused
            raise _open_error(url, err, "shard (listed in the index)") from err
        if size is not None and int(size) != entry.nbytes:
            raise DataError(
                f"shard {url} has {size} bytes but the index records {entry.nbytes}: it is "
                "truncated or was replaced; copy it again or re-run mlpmixer data pack"
            )


# --- one shard ----------------------------------------------------------------------------------


@dataclass
class Sample:
    """One record of a shard: its key, image bytes and suffix, and label (None if absent)."""

    key: str
    image: bytes | None
    suffix: str
    label: int | None


def _record(raw: dict[str, Any]) -> Sample:
    suffix = next((k for k in IMAGE_KEYS if k in raw), "")
    label = raw.get(LABEL_KEY)
    try:
        value = None if label is None else int(label.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        value = None
    return Sample(raw["__key__"], raw.get(suffix) if suffix else None, suffix, value)


def parse_shard(data: bytes, url: str, expected_sha256: str, expected_count: int) -> list[Sample]:
    """The records of one shard's bytes, after checking its SHA-256 and record count."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise DataError(
            f"shard {url}: checksum mismatch (sha256 {digest[:16]}..., the index says "
            f"{expected_sha256[:16]}...); the shard is corrupt or was replaced: copy it again "
            "or re-run mlpmixer data pack"
        )
    try:
        from webdataset.tariterators import group_by_keys, tar_file_iterator
    except ImportError as err:
        raise DataError(f"reading shards needs webdataset: {INSTALL_HINT}") from err
    try:
        files = ({**f, "__url__": url} for f in tar_file_iterator(io.BytesIO(data)))
        samples = [_record(raw) for raw in group_by_keys(files)]
    except Exception as err:  # tarfile.ReadError, duplicate members ...
        raise DataError(f"shard {url}: not a readable tar shard ({err})") from err
    if len(samples) != expected_count:
        raise DataError(
            f"shard {url}: holds {len(samples)} samples but the index records {expected_count}"
        )
    return samples


# --- the order of an epoch ----------------------------------------------------------------------


def _generator(*parts: int) -> torch.Generator:
    seed = int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")
    return torch.Generator().manual_seed(seed)


class EpochOrder:
    """Position p in [0, N) of an epoch -> (shard number, record number in that shard).

    Shuffled: the shards are taken in a permutation seeded by (seed, epoch), and each shard's
    records in a permutation seeded by (seed, epoch, shard); otherwise index order. A
    contiguous range of positions touches few shards, so a process reading one reads little.
    """

    def __init__(self, counts: list[int], seed: int, epoch: int, shuffle: bool) -> None:
        n = len(counts)
        self.counts, self.seed, self.epoch, self.shuffle = counts, seed, epoch, shuffle
        self.shards = (
            torch.randperm(n, generator=_generator(seed, epoch)).tolist()
            if shuffle
            else list(range(n))
        )
        self.starts = [0]
        for shard in self.shards:
            self.starts.append(self.starts[-1] + counts[shard])
        self._perms: dict[int, list[int]] = {}  # one epoch of one reader: a few shards

    def __len__(self) -> int:
        return self.starts[-1]

    def records(self, shard: int) -> list[int]:
        if shard not in self._perms:
            count = self.counts[shard]
            gen = _generator(self.seed, self.epoch, shard)
            perm = torch.randperm(count, generator=gen) if self.shuffle else torch.arange(count)
            self._perms[shard] = perm.tolist()
        return self._perms[shard]

    def locate(self, position: int) -> tuple[int, int]:
        slot = bisect.bisect_right(self.starts, position) - 1
        shard = self.shards[slot]
        return shard, self.records(shard)[position - self.starts[slot]]


# --- data sets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decode:
    """How records become (float32 (C, H, W) in [0, 1], label): the folder path's decoding."""

    in_chans: int
    img_size: tuple[int, int]
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    skip_bad: bool = False


class ShardDataset(Dataset):
    """One split of a shard index, map-style in index order: item i -> (image, label).

    Keeps the last shard it read, so sequential access reads each shard once.
    """

    def __init__(self, index: ShardIndex, split: str, decode: Decode) -> None:
        self.index, self.split, self.decode = index, split, decode
        self.entries = index.splits[split]
        self.counts = [e.count for e in self.entries]
        self.num_classes = len(index.class_names)
        self._cache: dict[int, list[Sample]] = {}
        self.keep = 2  # shards kept in memory (a stream sets one per lane it reads)

    def __len__(self) -> int:
        return sum(self.counts)

    def shard(self, number: int) -> list[Sample]:
        """The records of shard ``number`` (read, checked and cached: the last few per reader)."""
        if number not in self._cache:
            entry = self.entries[number]
            url = self.index.url(entry)
            samples = parse_shard(read_bytes(url), url, entry.sha256, entry.count)
            recent = list(self._cache.items())[-(self.keep - 1) :] if self.keep > 1 else []
            self._cache = {**dict(recent), number: samples}
        return self._cache[number]

    def item(
        self, shard: int, record: int, order: list[int] | None = None
    ) -> tuple[torch.Tensor, int]:
        """Decoded record ``record`` of ``shard``; with skipping on, a bad one is replaced by the
        next one in ``order`` (the shard's epoch order), so batches keep their size."""
        samples = self.shard(shard)
        try:
            return self._decode(samples[record], shard)
        except DataError as err:
            if not self.decode.skip_bad:
                raise DataError(f"{err}; {SKIP_HINT}") from err
            log.warning("skipping bad sample: %s", err)
        order = order or list(range(len(samples)))
        start = order.index(record)
        for offset in range(1, len(order)):
            try:
                return self._decode(samples[order[(start + offset) % len(order)]], shard)
            except DataError as err:
                log.warning("skipping bad sample: %s", err)
        raise DataError(f"shard {self.index.url(self.entries[shard])}: no usable sample left")

    def _decode(self, sample: Sample, shard: int) -> tuple[torch.Tensor, int]:
        where = f"shard {self.index.url(self.entries[shard])}, sample {sample.key}"
        if sample.label is None:
            raise DataError(
                f"{where}: no label ({sample.key}.{LABEL_KEY} missing or not an integer)"
            )
        if not 0 <= sample.label < self.num_classes:
            raise DataError(f"{where}: label {sample.label} is outside 0..{self.num_classes - 1}")
        if sample.image is None:
            raise DataError(f"{where}: no image (expected one of .{', .'.join(IMAGE_KEYS)})")
        d = self.decode
        image = load_image(io.BytesIO(sample.image), d.in_chans, name=where)
        return resize_image(image, d.img_size, d.crop_pct, d.interpolation), sample.label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} samples")
        return self.item(*self._index_order.locate(int(index)))

    @functools.cached_property
    def _index_order(self) -> EpochOrder:
        return EpochOrder(self.counts, 0, 0, shuffle=False)

    def first_images(self, count: int) -> torch.Tensor:
        """(n, C, H, W): up to ``count`` images of the first shard (packing shuffled them)."""
        n = min(count, self.counts[0])
        return torch.stack([self.item(0, i)[0] for i in range(n)])


class ShardStream(IterableDataset):
    """One process's part of an epoch of a `ShardDataset`, as consecutive micro-batches.

    The epoch order (`EpochOrder`) is cut into ``world_size`` contiguous parts of ``per_rank``
    positions; this process's part is cut into micro-batches of ``micro_batch`` samples.
    Micro-batch i is read from lane i % LANES, each lane a contiguous run of the part, and
    DataLoader worker j of W yields micro-batches start+j, start+j+W, ... (the DataLoader
    takes them in turn, so the order is the same for any W). Positions >= len(dataset)
    (evaluation padding) repeat earlier samples with label -1.
    """

    def __init__(
        self, dataset: ShardDataset, *, seed: int, shuffle: bool, rank: int, world_size: int,
        micro_batch: int, per_rank: int,
    ) -> None:  # fmt: skip
        self.dataset, self.seed, self.shuffle = dataset, seed, shuffle
        self.rank, self.world_size, self.micro_batch, self.per_rank = (
            rank,
            world_size,
            micro_batch,
            per_rank,
        )
        self.num_micro = math.ceil(per_rank / micro_batch)
        sizes = [len(range(lane, self.num_micro, LANES)) for lane in range(LANES)]
        self.lane_starts = [sum(sizes[:lane]) * micro_batch for lane in range(LANES)]
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_micro_batch: int = 0) -> None:
        """The epoch to read and how many of this process's micro-batches to skip (resume)."""
        self.epoch, self.start = epoch, start_micro_batch

    def positions(self, micro: int) -> range:
        """Epoch positions of this process's micro-batch ``micro``."""
        lane, k = micro % LANES, micro // LANES
        first = self.rank * self.per_rank + self.lane_starts[lane] + k * self.micro_batch
        last = min(first + self.micro_batch, (self.rank + 1) * self.per_rank)
        return range(first, last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        self.dataset.keep = math.ceil(LANES / workers) + 1  # this worker's lanes, one shard each
        order = EpochOrder(self.dataset.counts, self.seed, self.epoch, self.shuffle)
        total = len(order)
        for micro in range(self.start + worker, self.num_micro, workers):
            for position in self.positions(micro):
                shard, record = order.locate(position % total)
                image, label = self.dataset.item(shard, record, order.records(shard))
                yield image, (label if position < total else -1)
