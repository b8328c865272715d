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
`GlobalBatchStream`, an iterable over one process's share of each global batch of a seeded
epoch order (see `EpochOrder`): the global batches do not depend on the number of
processes, so a resumed run starts at the exact sample where the interrupted one stopped,
on any number of processes. Evaluation reads `ShardStream`, one contiguous part a process.

``https://`` reads (index, sizes, shards) go through `mlpmixer.download`'s reader: a stall
window, a size cap (the index: `INDEX_MAX_BYTES`; a shard: the bytes its entry records) and
a one-line `DownloadError` (exit 1). Every index value is type- and bound-checked before use.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..download import (
    MAX_BYTES_ENV,
    RemoteNotFoundError,
    is_http,
    max_download_bytes,
    read_url,
    url_size,
)
from ..errors import DataError, DownloadError
from .images import IMAGE_EXTENSIONS, load_image, resize_image
from .transforms import WorkerSamples

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
    # {split: {"min", "median", "max"} shorter image side}, as `pack` records it (may be absent)
    image_sides: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

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


@contextlib.contextmanager
def _absent_as_data_error(location: str, what: str) -> Iterator[None]:
    """A 404 is a wrong path (`DataError`, exit 2), as a missing local file is."""
    try:
        yield
    except RemoteNotFoundError as err:
        raise DataError(f"{what} {location} does not exist (the server answered 404)") from err


def read_bytes(
    location: str, what: str = "shard", limit: int | None = None, note: str | None = None
) -> bytes:
    """The bytes at a path or URL, at most ``limit`` (default `max_download_bytes`); a clear
    error naming it when absent, unreachable, stalled or too large.

    ``http(s)://`` is read by `mlpmixer.download.read_url` (the stall window and size cap of
    checkpoint downloads, `DownloadError`, exit 1); other URLs and paths by fsspec.
    """
    cap = limit or max_download_bytes()
    if is_http(location):
        with _absent_as_data_error(location, what):
            return read_url(location, cap, f"read {what}", note)
    try:
        with _fsspec().open(location, "rb") as handle:
            data = handle.read(cap + 1)
    except ImportError as err:  # fsspec's http/s3/gs back-ends are optional packages
        raise DataError(f"{location}: {err}; {INSTALL_HINT} (s3: s3fs, gs: gcsfs)") from err
    except Exception as err:  # fsspec and its back-ends raise many types
        raise _open_error(location, err, what) from err
    if len(data) > cap:
        reason = note or f"${MAX_BYTES_ENV} raises the limit"
        raise DataError(f"{what} {location} is larger than {cap:,} bytes ({reason})")
    return data


# An index is a few hundred bytes per shard: 64 MiB is ~400,000 shards (ImageNet-21k at
# 1024 samples per shard needs ~14,000); more is an endless or hostile body, not an index.
INDEX_MAX_BYTES = 64 * 2**20
MAX_CLASSES = 1_000_000
MIN_SAMPLE_BYTES = 1024  # a tar member is a 512-byte header + >= 512 bytes of data
SHA256 = re.compile(r"[0-9a-f]{64}")


def _int_field(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if type(value) is not int:  # not bool, float or a string of digits
        raise DataError(f"{where}.{key}: expected an integer, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _entry(raw: Any, where: str) -> ShardEntry:
    """One shard entry, its types and bounds checked; errors name ``where`` and the key."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a shard entry (an object), got {_short(raw)}")
    name, sha256 = raw.get("name"), raw.get("sha256")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise DataError(f"{where}.name: expected a file name, got {_short(name)}")
    if name.startswith(".") or len(name) > 255 or not name.isprintable():
        raise DataError(f"{where}.name: {_short(name)} is not a plain file name")
    nbytes, count = _int_field(raw, "bytes", where), _int_field(raw, "count", where)
    cap = max_download_bytes()
    if not 0 < nbytes <= cap:
        raise DataError(f"{where}.bytes: {nbytes} is outside 1..{cap} (${MAX_BYTES_ENV})")
    if not 0 < count <= nbytes // MIN_SAMPLE_BYTES:
        raise DataError(
            f"{where}.count: {count} samples cannot be in a shard of {nbytes} bytes (at most "
            f"{nbytes // MIN_SAMPLE_BYTES}: each takes >= {MIN_SAMPLE_BYTES} bytes of a tar)"
        )
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        raise DataError(f"{where}.sha256: expected 64 lowercase hex digits, got {_short(sha256)}")
    return ShardEntry(name, count, nbytes, sha256)


def _load_json(data: bytes, location: str) -> Any:
    try:
        return json.loads(data)
    except RecursionError as err:  # "[[[[..." deeper than Python's stack
        raise DataError(f"{location}: not a shard index (JSON nested too deeply)") from err
    except ValueError as err:
        raise DataError(f"{location}: not a valid shard index ({err})") from err


def _class_names(names: Any, location: str) -> tuple[str, ...]:
    if not isinstance(names, list) or not 0 < len(names) <= MAX_CLASSES:
        raise DataError(f"{location}: class_names: expected a list of 1..{MAX_CLASSES} names")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise DataError(f"{location}: class_names[{i}]: expected a string, got {_short(name)}")
    return tuple(names)


def parse_index(data: bytes, location: str) -> ShardIndex:
    """`ShardIndex` from the bytes of ``index.json``; `DataError` naming the key that is wrong."""
    raw = _load_json(data, location)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{location}: not an mlpmixer shard index (format != {FORMAT!r})")
    if raw.get("version") != VERSION:
        raise DataError(
            f"{location}: shard index version {_short(raw.get('version'))}, expected {VERSION}"
        )
    names = _class_names(raw.get("class_names"), location)
    splits = raw.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise DataError(f"{location}: splits: expected an object of split name -> shard list")
    parsed = {}
    for split, entries in splits.items():
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{location}: splits.{split}: expected a non-empty list of shards")
        where = f"{location}: splits.{split}"
        parsed[split] = tuple(_entry(item, f"{where}[{i}]") for i, item in enumerate(entries))
    base = location.rsplit("/", 1)[0] if "://" in location else str(Path(location).parent)
    return ShardIndex(base, names, parsed, _image_sides(raw.get("image_sides", {}), location))


MAX_SIDE = 1 << 20  # pixels: PIL's bomb limit allows no image near this on its shorter side


def _image_sides(raw: Any, location: str) -> dict[str, dict[str, int]]:
    """The optional ``image_sides`` of an index, each value an integer in 1..`MAX_SIDE`."""
    if not isinstance(raw, dict):
        raise DataError(f"{location}: image_sides: expected an object, got {_short(raw)}")
    sides = {}
    for split, stats in raw.items():
        where = f"{location}: image_sides.{split}"
        if not isinstance(stats, dict):
            raise DataError(f"{where}: expected an object, got {_short(stats)}")
        for key in ("min", "median", "max"):
            value = _int_field(stats, key, where)
            if not 0 < value <= MAX_SIDE:
                raise DataError(f"{where}.{key}: {value} is outside 1..{MAX_SIDE}")
        sides[str(split)] = {key: stats[key] for key in ("min", "median", "max")}
    return sides


def read_index(text: str) -> ShardIndex:
    location = index_location(text)
    data = read_bytes(location, "shard index", INDEX_MAX_BYTES, "the limit for a shard index")
    return parse_index(data, location)


def _listed_sizes(fs: Any, base: str) -> dict[str, int]:
    """{file name: size} of the index's folder, where one listing gives sizes (local, s3, gs)."""
    try:
        found = fs.ls(base, detail=True)
    except Exception:  # HTTP servers need not list folders: each shard is asked instead
        return {}
    sizes = ((posixpath.basename(str(e.get("name", "")).rstrip("/")), e.get("size")) for e in found)
    return {name: int(size) for name, size in sizes if size is not None}


def _http_size(url: str) -> int | None:
    what = "shard (listed in the index)"
    with _absent_as_data_error(url, what):
        return url_size(url, f"read {what}")


def _fs_sizes(index: ShardIndex, entries: tuple[ShardEntry, ...]) -> dict[str, int | None]:
    """{shard name: size} from fsspec (local folders, s3, gs)."""
    fs, _ = _fsspec().core.url_to_fs(index.base)
    listed: dict[str, int | None] = dict(_listed_sizes(fs, index.base))  # one request a bucket
    for entry in entries:
        if listed.get(entry.name) is None:
            url = index.url(entry)
            try:
                listed[entry.name] = fs.info(url).get("size")
            except Exception as err:  # absent, unreachable, refused
                raise _open_error(url, err, "shard (listed in the index)") from err
    return listed


def check_shards(index: ShardIndex, entries: tuple[ShardEntry, ...]) -> None:
    """Every listed shard exists with the size the index records (before any training)."""
    if is_http(index.base):  # one HEAD per shard, each bounded by the stall window
        sizes = {entry.name: _http_size(index.url(entry)) for entry in entries}
    else:
        sizes = _fs_sizes(index, entries)
    for entry in entries:
        url, size = index.url(entry), sizes[entry.name]
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
    """How records become (image, label): the folder path's decoding (see `ShardDataset`)."""

    in_chans: int
    img_size: tuple[int, int]
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    skip_bad: bool = False


class ShardDataset(WorkerSamples, Dataset):
    """One split of a shard index, map-style in index order: item i -> (image, label).

    Images as `mlpmixer.data.folder.ImageFileDataset` gives them (`WorkerSamples`): float32
    by default, uint8 `eval_sample` after `use_uint8`, uint8 `train_sample` after
    `set_train_augment`, seeded by (seed, epoch, i) with i the sample's index-order position
    (keys may be ``(epoch, i)``; `ShardStream` passes its epoch). Keeps the last shard it
    read, so sequential access reads each shard once.
    """

    def __init__(self, index: ShardIndex, split: str, decode: Decode) -> None:
        self.index, self.split, self.decode = index, split, decode
        self.entries = index.splits[split]
        self.counts = [e.count for e in self.entries]
        self.num_classes = len(index.class_names)
        self.firsts = [sum(self.counts[:i]) for i in range(len(self.counts))]  # index order
        self._cache: dict[int, list[Sample]] = {}
        self.keep = 2  # shards kept in memory (a stream sets one per lane it reads)
        # with skip_bad: a file each replaced sample is appended to ("shard URL, sample KEY:
        # reason"), by whichever process or worker met it (the run counts its distinct lines)
        self.skip_log: Path | None = None
        self._logged: set[str] = set()  # said once per reader, though met every epoch

    def __len__(self) -> int:
        return sum(self.counts)

    def shard(self, number: int) -> list[Sample]:
        """The records of shard ``number`` (read, checked and cached: the last few per reader)."""
        if number not in self._cache:
            entry = self.entries[number]
            url = self.index.url(entry)
            data = read_bytes(url, limit=entry.nbytes, note="the size the index records")
            samples = parse_shard(data, url, entry.sha256, entry.count)
            recent = list(self._cache.items())[-(self.keep - 1) :] if self.keep > 1 else []
            self._cache = {**dict(recent), number: samples}
        return self._cache[number]

    def item(
        self, shard: int, record: int, order: list[int] | None = None, epoch: int = 0
    ) -> tuple[torch.Tensor, int]:
        """Decoded record ``record`` of ``shard``; with skipping on, a bad one is replaced by the
        next one in ``order`` (the shard's epoch order), so batches keep their size. The
        replacement keeps the bad record's augmentation seed, as image folders do."""
        samples = self.shard(shard)
        index = self.firsts[shard] + record  # the sample's seed, whichever record replaces it
        try:
            return self._decode(samples[record], shard, epoch, index)
        except DataError as err:
            if not self.decode.skip_bad:
                raise DataError(f"{err}; {SKIP_HINT}") from err
            self._skipped(err)
        order = order or list(range(len(samples)))
        start = order.index(record)
        for offset in range(1, len(order)):
            substitute = samples[order[(start + offset) % len(order)]]
            try:
                return self._decode(substitute, shard, epoch, index)
            except DataError as err:
                self._skipped(err)
        raise DataError(f"shard {self.index.url(self.entries[shard])}: no usable sample left")

    def _skipped(self, err: DataError) -> None:
        log.warning("skipping bad sample: %s", err)
        # one line per sample, the same from every reader (PIL names the BytesIO by address)
        line = re.sub(r" at 0x[0-9a-fA-F]+", "", " ".join(str(err).split()))
        if self.skip_log is None or line in self._logged:
            return
        self._logged.add(line)
        try:  # short O_APPEND writes: lines from several workers do not interleave
            with open(self.skip_log, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as failure:  # e.g. a node without the run directory: logged only
            log.warning("cannot record the skipped sample in %s: %s", self.skip_log, failure)

    def _decode(
        self, sample: Sample, shard: int, epoch: int, index: int
    ) -> tuple[torch.Tensor, int]:
        where = f"shard {self.index.url(self.entries[shard])}, sample {sample.key}"
        if sample.label is None:
            raise DataError(
                f"{where}: no label ({sample.key}.{LABEL_KEY} missing or not an integer)"
            )
        if not 0 <= sample.label < self.num_classes:
            raise DataError(f"{where}: label {sample.label} is outside 0..{self.num_classes - 1}")
        if sample.image is None:
            raise DataError(f"{where}: no image (expected one of .{', .'.join(IMAGE_KEYS)})")
        return self._pixels(sample.image, where, epoch, index), sample.label

    def _pixels(self, data: bytes, where: str, epoch: int, index: int) -> torch.Tensor:
        """float32 (C, H, W) in [0, 1] (the public API), or uint8 as `ImageFileDataset`."""
        d = self.decode
        if not self.uint8:
            image = load_image(io.BytesIO(data), d.in_chans, name=where)
            return resize_image(image, d.img_size, d.crop_pct, d.interpolation)
        return self.worker_sample(data, epoch, index, d.img_size, d.crop_pct, d.in_chans,
                                  d.interpolation, where)  # fmt: skip

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        """Sample ``key`` of the index order; ``(epoch, index)`` keys as `ImageFileDataset`."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} samples")
        shard, record = self._index_order.locate(int(index))
        return self.item(shard, record, epoch=epoch)

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
                records = order.records(shard)
                image, label = self.dataset.item(shard, record, records, self.epoch)
                yield image, (label if position < total else -1)


class GlobalBatchStream(ShardStream):
    """This process's share of an epoch of *global* batches that do not depend on the number
    of processes, so a run resumed mid-epoch on any number continues the same sample sequence.

    A global batch of B samples is ``grad_accum`` groups of B / grad_accum consecutive
    positions of the epoch order (`EpochOrder`); group u (u = step x grad_accum + part) is
    the u // LANES-th group of lane u % LANES, the lanes being `LANES` contiguous runs of
    whole groups, so consecutive groups read different regions (shards) of the epoch.
    Process r of W takes the r-th of W contiguous blocks of each group as its micro-batch:
    a micro-batch comes from one lane, so DataLoader workers (a divisor of `LANES`, taking
    micro-batches in turn) read disjoint lanes and a process reads each of its shards once.
    A process reads the shards its blocks overlap, about (G/W + shard size) / G of the epoch
    for groups of G samples (ImageNet, B = 4096 without accumulation, 1024-sample shards: 50%
    at W = 8, 25% at W = 64; 256-sample shards: 17%, 6%; with grad_accum 8 every shard), where
    an order cut into one part per process read 1/W: the price of a sequence that does not
    depend on W. The sequence depends on ``grad_accum``, which a resumed run keeps.
    """

    def __init__(
        self, dataset: ShardDataset, *, seed: int, rank: int, world_size: int, batch_size: int,
        grad_accum: int, steps: int,
    ) -> None:  # fmt: skip
        micro_batch = batch_size // (world_size * grad_accum)
        super().__init__(dataset, seed=seed, shuffle=True, rank=rank, world_size=world_size,
                         micro_batch=micro_batch, per_rank=steps * micro_batch * grad_accum)  # fmt: skip
        self.group, self.grad_accum = batch_size // grad_accum, grad_accum
        self.num_micro = steps * grad_accum
        sizes = [len(range(lane, self.num_micro, LANES)) for lane in range(LANES)]
        self.group_starts = [sum(sizes[:lane]) * self.group for lane in range(LANES)]

    def group_positions(self, group: int) -> range:
        """Epoch positions of group ``group`` (of every process), the same for any number."""
        first = self.group_starts[group % LANES] + (group // LANES) * self.group
        return range(first, first + self.group)

    def positions(self, micro: int) -> range:
        """Epoch positions of this process's micro-batch ``micro``: its block of that group."""
        first = self.rank * self.micro_batch
        return self.group_positions(micro)[first : first + self.micro_batch]
