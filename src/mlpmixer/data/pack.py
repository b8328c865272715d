"""`pack_shards`: a class-folder tree or a Hugging Face data set -> WebDataset tar shards + index.

Each split is written in a seeded random order (so a shard mixes classes even when the
source is sorted by class), ``samples_per_shard`` records per shard, each record the source
image's encoded bytes unchanged (``KEY.jpg``/``.png``/...) and its label (``KEY.cls``). Shards
are written to a temporary name and renamed when complete; ``index.json`` (class names, and
per shard its record count, size and SHA-256; see `mlpmixer.data.shards`) is written last,
so an interrupted pack never leaves an index pointing at missing or partial shards. The
index also records each split's shorter image side (min, median, max), which sizes the
training defaults as a class folder's images do (`mlpmixer.train.data_defaults`).

Every image's header is read first (`mlpmixer.data.images.open_image`): a decompression
bomb, a zero-sized image or a non-image is left out with a message and listed in
``OUT/skipped_images.txt``. OUT must be new, empty, or a pack of ours that was interrupted
(the rule ``train --out`` follows).
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
import re
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..fileio import atomic_path, atomic_write_json, atomic_write_text, check_new_dir
from .folder import folder_split, is_image_folder
from .hf import PREFIX as HF_PREFIX
from .hf import hf_records
from .images import open_image, read_file
from .shards import FORMAT, INDEX_NAME, INSTALL_HINT, LABEL_KEY, VERSION

FIXED_MTIME = 0.0  # the same input packs to byte-identical shards


@dataclass
class Record:
    """One image to pack: its encoded bytes (read when written), suffix and label."""

    read: Callable[[], bytes]
    suffix: str
    label: int
    where: str  # names the source sample in errors


def _folder_records(
    path: Path, val_fraction: float, seed: int
) -> tuple[list[str], dict[str, list[Record]]]:
    train_files, train_labels, test_files, test_labels, names = folder_split(
        path, "test", val_fraction, seed
    )

    def records(files: list[Path], labels: list[int]) -> list[Record]:
        return [
            Record(functools.partial(read_file, f), f.suffix.lower().lstrip("."), y, str(f))
            for f, y in zip(files, labels, strict=True)
        ]

    return names, {
        "train": records(train_files, train_labels),
        "test": records(test_files, test_labels),
    }


def _shuffled(records: Iterable[Record], seed: int) -> list[Record]:
    items = list(records)
    random.Random(seed).shuffle(items)
    return items


def _check_label(record: Record, num_classes: int, split: str) -> None:
    if record.label is None or record.label < 0:
        raise DataError(
            f"{record.where}: no label ({record.label!r}) in the {split} split; a split without "
            "labels (e.g. ImageNet-1k's test split) cannot be packed for training: choose a "
            "labelled split (--val-split validation)"
        )
    if record.label >= num_classes:
        raise DataError(f"{record.where}: label {record.label} is outside 0..{num_classes - 1}")


def _write_shard(
    path: Path, records: list[Record], split: str, first: int, num_classes: int
) -> dict[str, Any]:
    try:
        from webdataset.writer import TarWriter
    except ImportError as err:
        raise DataError(f"packing shards needs webdataset: {INSTALL_HINT}") from err
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as handle,
        TarWriter(handle, encoder=False, mtime=FIXED_MTIME) as tar,
    ):
        for i, record in enumerate(records):
            _check_label(record, num_classes, split)
            key = f"{split}-{first + i:09d}"
            tar.write(
                {
                    "__key__": key,
                    record.suffix: record.read(),
                    LABEL_KEY: str(record.label).encode(),
                }
            )
    data = path.read_bytes()
    return {
        "name": path.name,
        "count": len(records),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Screen:
    """Reads each record once and keeps it only if its header is a usable image (`open_image`:
    not a decompression bomb, not zero-sized, an image at all); the others are said and
    listed (``OUT/skipped_images.txt``). Collects each split's shorter image sides, which
    the index records for sizing training defaults (`mlpmixer.train.data_defaults`)."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress
        self.skipped: list[str] = []
        self.sides: dict[str, list[int]] = {}

    def records(self, split: str, records: Iterable[Record]) -> Iterator[Record]:
        sides = self.sides.setdefault(split, [])
        for record in records:
            try:
                data = record.read()
                with open_image(io.BytesIO(data), name=record.where) as image:
                    sides.append(min(image.size))
            except DataError as err:
                self.skipped.append(str(err).removeprefix("cannot read image "))
                self.progress(f"skipped: {err}")
                continue
            yield Record(lambda data=data: data, record.suffix, record.label, record.where)

    def summary(self) -> dict[str, dict[str, int]]:
        """{split: {"min", "median", "max"} of the shorter image side} for the index."""
        return {
            split: {"min": min(v), "median": int(statistics.median(v)), "max": max(v)}
            for split, v in self.sides.items()
            if v
        }


def _write_split(out: Path, split: str, records: Iterable[Record], per_shard: int, num_classes: int,
                 progress: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    entries: list[dict[str, Any]] = []
    written = 0
    for number, chunk in enumerate(_chunks(records, per_shard)):
        entries.append(
            _write_shard(out / f"{split}-{number:06d}.tar", chunk, split, written, num_classes)
        )
        written += len(chunk)
        progress(f"{split}: {written} samples in {len(entries)} shards")
    if not entries:
        raise DataError(f"the {split} split has no samples to pack")
    return entries


def suffix_of(data: bytes, hint: str | None) -> str:
    """The file suffix of encoded image bytes: from ``hint`` (a file name) or PIL's format."""
    if hint and "." in hint:
        return hint.rsplit(".", 1)[1].lower()
    try:
        with open_image(io.BytesIO(data)) as image:
            return (image.format or "png").lower().replace("jpeg", "jpg")
    except DataError:  # `Screen` says why it is unusable and leaves it out
        return "png"


def _hf_source(
    spec: str, splits: dict[str, str | None], seed: int
) -> tuple[list[str], dict[str, Iterable[Record]]]:
    names: list[str] = []
    out: dict[str, Iterable[Record]] = {}
    for ours, theirs in splits.items():
        names, rows = hf_records(spec, ours, theirs, seed)
        out[ours] = (Record(lambda d=data: d, suffix_of(data, hint), label, f"{spec} [{where}]")
                     for data, hint, label, where in rows)  # fmt: skip
    return names, out


def pack_shards(
    source: str,
    out: str | Path,
    *,
    samples_per_shard: int = 1024,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_split: str | None = None,
    val_split: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Write the shards and ``OUT/index.json`` of ``source``; returns the index as written.

    ``source``: a class-folder tree (``DIR/train/<class>/*`` + ``DIR/val/<class>/*``, or
    ``DIR/<class>/*`` split by ``val_fraction`` and ``seed``), or ``hf:NAME[:CONFIG]`` (read
    with ``streaming=True``, so the data set is never stored whole; ``train_split`` and
    ``val_split`` name its splits, default ``train`` and ``validation``/``test``).
    """
    if samples_per_shard < 1:
        raise ConfigError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    out = Path(out)
    if (out / INDEX_NAME).exists():
        raise ConfigError(f"{out} already holds shards ({INDEX_NAME}); choose another OUT")
    check_new_dir(out, _interrupted_pack, "shard set", option="OUT")
    if source.startswith(HF_PREFIX):
        names, splits = _hf_source(source, {"train": train_split, "test": val_split}, seed)
    elif is_image_folder(Path(source)):
        names, splits = _folder_records(Path(source), val_fraction, seed)
        splits = {
            split: _shuffled(records, seed + i) for i, (split, records) in enumerate(splits.items())
        }
    else:
        raise DataError(
            f"{source}: not a class-folder tree (DIR/<class>/* or DIR/train/<class>/*) nor hf:NAME"
        )
    out.mkdir(parents=True, exist_ok=True)
    screen = Screen(progress)
    entries = {
        split: _write_split(
            out, split, screen.records(split, records), samples_per_shard, len(names), progress
        )
        for split, records in splits.items()
    }
    index = {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "class_names": list(names),
        "splits": entries,
        "image_sides": screen.summary(),
    }
    if screen.skipped:
        atomic_write_text(out / SKIPPED_FILE, "".join(line + "\n" for line in screen.skipped))
        progress(f"left out {len(screen.skipped)} unusable images (listed in {out / SKIPPED_FILE})")
    atomic_write_json(out / INDEX_NAME, index)
    return index


SKIPPED_FILE = "skipped_images.txt"
_OUR_FILES = re.compile(r"((train|test)-\d{6}\.tar|\..*\.mlpmixer-.*\.tmp|skipped_images\.txt)")


def _interrupted_pack(folder: Path) -> bool:
    """Whether ``folder`` holds only what an interrupted pack leaves (shards, temporaries)."""
    return all(_OUR_FILES.fullmatch(path.name) for path in folder.iterdir())
