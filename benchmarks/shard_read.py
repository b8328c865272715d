"""Images per second from shards against the same images as class folders, side by side.

Writes N ImageNet-like JPEGs (500x375, random smooth content) as class folders, packs them
with `mlpmixer data pack`, then reads one epoch of each (decode + resize to 224, one
process, no DataLoader workers) in alternating rounds, so machine noise hits both alike:

    python benchmarks/shard_read.py --images 256 --rounds 3 --out benchmarks/results/shard-read.json

Reading from shards adds the SHA-256 check and tar parsing to the per-image decode; the
ratio says what that costs per core (the decode itself is the same function).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mlpmixer.cpu_kind import this_cpu
from mlpmixer.data import build_dataset
from mlpmixer.data.pack import pack_shards
from mlpmixer.data.shards import ShardStream


def write_tree(root: Path, count: int, classes: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(
            folder / f"{i}.jpg", quality=90
        )
    return root


def folder_epoch(path: Path) -> float:
    dataset, _ = build_dataset(path, "train", img_size=224, val_fraction=0.01)
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return len(dataset) / (time.perf_counter() - start)


def shard_epoch(path: Path) -> float:
    dataset, _ = build_dataset(path, "train", img_size=224)
    n = len(dataset)
    stream = ShardStream(
        dataset, seed=0, shuffle=True, rank=0, world_size=1, micro_batch=32, per_rank=n
    )
    start = time.perf_counter()
    count = sum(1 for _ in stream)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_tree(Path(tmp) / "tree", args.images)
        pack_shards(str(tree), Path(tmp) / "shards", samples_per_shard=64, val_fraction=0.01)
        rounds = []
        for _ in range(args.rounds):
            rounds.append(
                {"folder": folder_epoch(tree), "shards": shard_epoch(Path(tmp) / "shards")}
            )
    folder = float(np.median([r["folder"] for r in rounds]))
    shards = float(np.median([r["shards"] for r in rounds]))
    result = {
        "machine": this_cpu().model,
        "images": args.images,
        "rounds": rounds,
        "median_images_per_second": {"folder": folder, "shards": shards},
        "shards_over_folder": shards / folder,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
