"""Small class-folder trees, their shards, and a local HTTP server (shared by the shard tests)."""

from __future__ import annotations

import contextlib
import functools
import http.server
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from local_http import local_server
from mlpmixer.data.pack import pack_shards

CLASSES = ("ant", "bee", "cow")


def make_tree(root: Path, per_class: int = 12, size: tuple[int, int] = (10, 9)) -> Path:
    """``root/train/<class>/*`` (PNG and JPEG, per_class each) + ``root/val/<class>/*`` (3 each)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", 3)):
        for c in CLASSES:
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
                suffix = ".png" if i % 2 else ".jpg"
                Image.fromarray(pixels).save(folder / f"{i}{suffix}")
    return root


def make_shards(root: Path, per_class: int = 12, samples_per_shard: int = 5) -> Path:
    """(tree at root/src, shards at root/shards); returns the shard folder."""
    tree = make_tree(root / "src", per_class)
    pack_shards(str(tree), root / "shards", samples_per_shard=samples_per_shard)
    return root / "shards"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    with local_server(handler) as url:
        yield url
