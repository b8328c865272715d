"""The facts a run's defaults are sized from, read from each kind of image-file source:
training images, classes and the median shorter side of a few images (headers only; for
shards the index's count and the sides ``data pack`` recorded). Each source's
`DataSource.facts` calls the function of its kind (`train.data_defaults` sizes the run)."""

from __future__ import annotations

import io
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DataError
from .images import open_image
from .source import DataFacts

SIZE_SAMPLE = 32  # image headers read to estimate the pixel size


def folder_facts(directory: Path, val_fraction: float, seed: int) -> DataFacts | None:
    """The facts of an image folder, or None if ``directory`` is not one (errors come later,
    from the data loader, with their own messages)."""
    from .folder import folder_split, is_image_folder

    if not is_image_folder(directory):
        return None
    try:
        files, _, _, _, names = folder_split(directory, "train", val_fraction, seed)
    except Exception:  # an empty or odd folder: the data loader reports it properly
        return None
    step = max(1, len(files) // SIZE_SAMPLE)
    side = _median_side(files[::step][:SIZE_SAMPLE])
    return None if side is None else DataFacts(len(files), len(names), side)


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


def shard_facts(dataset: str, train_split: str | None) -> DataFacts | None:
    """The facts of a shard index: its training split's count and classes, and the median
    side `pack` recorded (``image_sides``); an index without it: the first shard's images."""
    from .shards import read_index

    index = read_index(dataset)  # errors here are the data set's own: said now, clearly
    entries = index.splits.get(train_split or "train")
    if not entries:
        return None  # the data loader names the missing split
    recorded = index.image_sides.get(train_split or "train", {}).get("median")
    if recorded is None:
        from .shards import parse_shard, read_bytes

        url = index.url(entries[0])
        data = read_bytes(url, limit=entries[0].nbytes, note="the size the index records")
        samples = parse_shard(data, url, entries[0].sha256, entries[0].count)
        recorded = _median_side(io.BytesIO(s.image) for s in samples[:SIZE_SAMPLE] if s.image)
    if recorded is None:
        return None
    return DataFacts(sum(e.count for e in entries), len(index.class_names), recorded)


def hf_facts(dataset: str, train_split: str | None) -> DataFacts | None:
    """The facts of ``hf:NAME``: its training split's size and classes, and the median side
    of `SIZE_SAMPLE` images spread over it."""
    from .hf import _columns, load_hf_split

    table = load_hf_split(dataset, "train", train_split)
    image, label = _columns(table.features, dataset)
    step = max(1, len(table) // SIZE_SAMPLE)
    sides = [min(table[i][image].size) for i in range(0, len(table), step)[:SIZE_SAMPLE]]
    if not sides:
        return None
    names = table.features[label].names
    return DataFacts(len(table), len(names), int(statistics.median(sides)))
