"""Training-input throughput per CPU core on ImageNet-like JPEGs.

Side by side in one process and one thread, interleaved round by round:

* ``today``: the float path main had (`ImageFileDataset` without `use_uint8`: decode to
  float32 at full resolution, resize, centre crop; crops and RandAugment then ran on the device);
* ``timm``: a timm-style PIL path written here: decode, RandomResizedCrop (10 attempts, scale
  0.08-1, log-uniform ratio, torchvision's algorithm) with one bilinear resample, flip, uint8;
* ``exact``: `mlpmixer.data.transforms.train_sample` with the defaults (big_vision's inception
  crop over the whole image; ``train_decode: full``, TF's ``decode_and_crop_jpeg`` of the crop
  with TF's DCT, by libjpeg-turbo's crop decode where `mlpmixer.data.jpeg_crop` can build it,
  else a full decode with the crop's edge columns recomputed — ``MLPMIXER_JPEG_CROP_C=0``
  forces that; ``train_resize: torch``, within one grey level of TF's bilinear; flip) -> uint8;
* ``bitexact``: the same with ``train_resize: tf`` (TF's bilinear bit for bit);
* ``plainfull``: the crop of a plain full decode (simplejpeg), what ``exact`` was before
  issue 26's crop decode: TF's pixels but for the crop's edge columns;
* ``fast``: ``train_decode: reduced`` (JPEG decoded at 1/2-1/8 scale when the crop allows,
  else as ``exact``);
* ``exact+randaug``: ``exact`` with RandAugment(2, 15) in the worker (the imagenet1k_b16 recipe);
* ``decode``: PIL decode to RGB alone (the floor for PIL-based paths).

Each path also collates its images into batches of 32 (float32 or uint8), as a DataLoader
worker does. Rates are images per CPU-second of the process (one thread), which a busy shared
machine disturbs far less than wall-clock rates. Images are made here: 500x375 JPEGs at quality 90 with structure and noise,
about 60 KB each, like ImageNet's typical file. Prints images/s per core, the ratios, and the
cores needed to feed 8 H100s training Mixer-B/16 at 50% MFU (~52,000 images/s).

    python benchmarks/data_throughput.py                 # ~1-2 minutes
    python benchmarks/data_throughput.py --images 64 --rounds 5
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import random
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import default_collate

from mlpmixer.data import jpeg_crop, transforms
from mlpmixer.data.folder import ImageFileDataset
from mlpmixer.data.transforms import USE_SIMPLEJPEG, SampleAugment, sample_rng, train_sample
from mlpmixer.models.fast import pieces

SIZE = (224, 224)
BATCH = 32
TARGET_IMAGES_PER_S = 52_000  # 8 x H100, Mixer-B/16 training at 50% MFU
RESULTS = Path(__file__).resolve().parent / "results"


def imagenet_like_jpeg(rng: np.random.Generator, width: int = 500, height: int = 375) -> bytes:
    """A photo-like JPEG: smooth random structure, edges and sensor noise, ~60 KB at q90."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(6, 40), rng.uniform(6, 40), rng.uniform(0, 6.3)
        channels.append(np.sin(x / fx + phase) * np.cos(y / fy) * 70 + 128)
    image = np.stack(channels, -1)
    for _ in range(6):  # a few flat-coloured blocks: edges, as objects give
        top, left = int(rng.integers(0, height - 60)), int(rng.integers(0, width - 60))
        image[top : top + int(rng.integers(30, 150)), left : left + int(rng.integers(30, 150))] = (
            rng.uniform(0, 255, 3)
        )
    image += rng.normal(0, 18, image.shape)
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.6)
    )
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def timm_style(path: Path, rng: random.Random) -> torch.Tensor:
    """Decode, torchvision-style RandomResizedCrop + bilinear resample, flip, uint8 (C, H, W)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    width, height = image.size
    area = width * height
    box = (0, 0, width, height)
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.randint(0, height - h), rng.randint(0, width - w)
            box = (left, top, left + w, top + h)
            break
    image = image.resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR, box=box)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def plain_full(path: Path, augment: SampleAugment, rng: np.random.Generator) -> torch.Tensor:
    """`train_sample` with the full decode cropped as it is (no TF edge columns)."""
    box_of = transforms._training_box(SIZE, augment, rng)
    array, box = transforms._decode(path, box_of, SIZE, False, None, fast_dct=True)
    return transforms.augment_pixels(array, box, SIZE, augment, rng)


def decode_only(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy())


def make_paths(files: list[Path]) -> dict[str, Callable[[int, int], torch.Tensor]]:
    today = ImageFileDataset(files, [0] * len(files), 3, SIZE)  # float mode: main's path
    exact = SampleAugment()  # big_vision's area 5-100%, ratio 0.75-1.33, flip; full decode
    bitexact = SampleAugment(resize="tf")
    fast = SampleAugment(decode="reduced")
    randaug = SampleAugment(randaug_layers=2, randaug_magnitude=15.0)
    timm_rng = random.Random(0)
    return {
        "today": lambda i, epoch: today[i][0],
        "timm": lambda i, epoch: timm_style(files[i], timm_rng),
        "exact": lambda i, epoch: train_sample(files[i], SIZE, exact, sample_rng(0, epoch, i)),
        "bitexact": lambda i, epoch: train_sample(
            files[i], SIZE, bitexact, sample_rng(0, epoch, i)
        ),
        "plainfull": lambda i, epoch: plain_full(files[i], exact, sample_rng(0, epoch, i)),
        "fast": lambda i, epoch: train_sample(files[i], SIZE, fast, sample_rng(0, epoch, i)),
        "exact+randaug": lambda i, epoch: train_sample(
            files[i], SIZE, randaug, sample_rng(0, epoch, i)
        ),
        "decode": lambda i, epoch: decode_only(files[i]),
    }


def time_path(load: Callable[[int, int], torch.Tensor], count: int, epoch: int) -> float:
    """Images per CPU-second of loading ``count`` images and collating them in batches of
    `BATCH`. CPU time of this (single-threaded) process, not wall time: on a shared machine
    the wall clock also counts the time other processes hold the core."""
    start = time.process_time()
    batch = []
    for i in range(count):
        batch.append(load(i, epoch))
        if len(batch) == BATCH:
            default_collate(batch)
            batch = []
    if batch:
        default_collate(batch)
    return count / (time.process_time() - start)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        found = re.search(r"Model name:\s*(.+)", out)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=500, help="JPEG width (ImageNet's typical)")
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: results/)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.images):
            path = Path(tmp) / f"{i:04d}.jpg"
            path.write_bytes(imagenet_like_jpeg(rng, args.width, args.height))
            files.append(path)
        mean_kb = sum(p.stat().st_size for p in files) / len(files) / 1000
        paths = make_paths(files)
        for load in paths.values():  # warm-up: imports, caches, tables
            time_path(load, min(8, len(files)), 0)
        rates: dict[str, list[float]] = {name: [] for name in paths}
        for round_ in range(args.rounds):  # interleaved: every round times every path
            for name, load in paths.items():
                rates[name].append(time_path(load, len(files), round_ + 1))
    median = {name: statistics.median(values) for name, values in rates.items()}
    best = {name: max(values) for name, values in rates.items()}  # least disturbed round
    machine = cpu_name()

    def ratios(rate: dict[str, float]) -> dict[str, float]:
        return {
            "exact/timm": round(rate["exact"] / rate["timm"], 2),
            "bitexact/timm": round(rate["bitexact"] / rate["timm"], 2),
            "fast/timm": round(rate["fast"] / rate["timm"], 2),
            "fast/exact": round(rate["fast"] / rate["exact"], 2),
            "exact/plainfull": round(rate["exact"] / rate["plainfull"], 2),
            "exact/today": round(rate["exact"] / rate["today"], 2),
            "exact+randaug/timm": round(rate["exact+randaug"] / rate["timm"], 2),
            "exact/decode": round(rate["exact"] / rate["decode"], 2),
        }

    result = {
        "benchmark": "data_throughput",
        "machine": machine,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "simplejpeg": USE_SIMPLEJPEG,
        # TF's crop decode through libjpeg-turbo (else the recomputed edge columns)
        "jpeg_crop_c": not pieces.switched_off(jpeg_crop.SWITCH)
        and jpeg_crop._library() is not None,
        "images": args.images,
        "jpeg_size": [args.width, args.height],
        "mean_jpeg_kb": round(mean_kb, 1),
        "rounds": args.rounds,
        "images_per_s_per_core": {k: round(v, 1) for k, v in median.items()},
        "best_round_images_per_s_per_core": {k: round(v, 1) for k, v in best.items()},
        "all_rounds": {k: [round(v, 1) for v in values] for k, values in rates.items()},
        "ratios": ratios(median),
        "ratios_best_rounds": ratios(best),
        "cores_for_52k_images_per_s": {
            k: math.ceil(TARGET_IMAGES_PER_S / v) for k, v in median.items()
        },
    }
    print(f"{machine}; {args.images} JPEGs of {mean_kb:.0f} KB, {args.width}x{args.height}; one thread; "
          f"{args.rounds} interleaved rounds; simplejpeg={USE_SIMPLEJPEG}")  # fmt: skip
    print(f"{'path':<14}{'median img/s':>13}{'best img/s':>12}{'cores for 52k/s':>17}")
    for name, value in median.items():
        cores = result["cores_for_52k_images_per_s"][name]
        print(f"{name:<14}{value:>13.0f}{best[name]:>12.0f}{cores:>17}")
    print(f"{'ratio':<20}{'median':>8}{'best':>8}")
    for name, ratio in result["ratios"].items():
        print(f"{name:<20}{ratio:>7.2f}x{result['ratios_best_rounds'][name]:>7.2f}x")
    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")
    shape = "" if (args.width, args.height) == (500, 375) else f"-{args.width}x{args.height}"
    out = args.out or RESULTS / f"data-throughput-{slug}{shape}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
