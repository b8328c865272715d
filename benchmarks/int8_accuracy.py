"""int8 accuracy: each method against the fp32 model, on real data.

Trained models on their data set's test split::

    python benchmarks/int8_accuracy.py NAME=CHECKPOINT@DATASET ... [--calibration-images 512]

fp32 top-1, then per method (weight-only, dynamic, static) int8 top-1, the drop in points,
top-1 agreement with fp32 and max/mean |Δlogit| over the whole test split. Static is
calibrated on a random sample of the *training* split, so the test images stay unseen. A
method the family does not allow is recorded as refused, with the reason.

ImageNet-size models on real photographs (no labels: agreement and Δlogit only)::

    python benchmarks/int8_accuracy.py --make-images IMAGES            # the set, once
    python benchmarks/int8_accuracy.py --architectures mixer_s16_224,vip_s7 --images IMAGES
    python benchmarks/int8_accuracy.py --checkpoint PATH --images IMAGES   # e.g. official weights

``--make-images`` writes real images at 224×224 RGB: square crops of scikit-learn's two
sample photographs (china.jpg, flower.jpg; ``--crops`` per photograph) and MNIST digits
(mnist5k) resized, as ``eval/`` and ``calibration/`` folders that share no pixels (evaluation
crops come from the left half of each photograph, calibration crops from the right half;
digits from the test and training split). Any folder of images works as ``--images``: with
``eval/`` and ``calibration/`` inside it they are used as such, otherwise every other image
(sorted by name) calibrates. ``--architectures`` builds registered models with their
default initialisation and a seeded random head (the Mixer-type families start with a zero
head, whose logits are all equal); ``--checkpoint`` loads any checkpoint `load_model` reads.
|Δlogit| is also given relative to the standard deviation of the fp32 logits.

Prints Markdown tables; writes the JSON with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

from mlpmixer import create_model, load_model
from mlpmixer.cpu_kind import this_cpu
from mlpmixer.data import build_dataset, load_image, resize_image
from mlpmixer.data.info import normalize
from mlpmixer.data.tensors import dataset_tensors
from mlpmixer.deploy import METHODS, quantize
from mlpmixer.deploy.accuracy import compare, logits
from mlpmixer.deploy.calibration import calibration_images, data_split
from mlpmixer.errors import ConfigError
from mlpmixer.fileio import atomic_write_json

SIDE = 224  # the registered ImageNet variants' input size


def method_rows(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    calibration: torch.Tensor,
    keep_float: tuple[str, ...] = (),
    name: str = "",
) -> dict[str, dict]:
    """Each method's `Agreement` (as a dict) against ``model`` on ``images``, or
    ``{"refused": why}`` where the family does not allow the method. ``keep_float``: layers
    kept in float on top of the default (stem and head)."""
    from mlpmixer.deploy.plain import default_keep

    reference = logits(model.eval(), images)
    keep = (*default_keep(model), *keep_float) if keep_float else None
    rows: dict[str, dict] = {}
    for method in METHODS:
        start = time.perf_counter()
        try:
            q = quantize(model, method, calibration=calibration, keep_float=keep)
        except ConfigError as err:
            rows[method] = {"refused": str(err)}
        else:
            rows[method] = compare(model, q, images, labels, reference=reference).to_dict()
            rows[method]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"{name} {method}: {json.dumps(rows[method])}", file=sys.stderr, flush=True)
    return rows


def measure(
    name: str, checkpoint: str, dataset: str, count: int, keep_float: tuple[str, ...] = ()
) -> dict:
    """A trained checkpoint on ``dataset``'s test split, calibrated on its training split."""
    model = load_model(checkpoint).eval()
    calibration = calibration_images(model.config, dataset, count)
    images, labels = data_split(model.config, dataset, "test")
    return {"name": name, "checkpoint": checkpoint, "dataset": dataset,
            "family": model.config.family, "calibration_images": calibration.shape[0],
            "kept_in_float_extra": list(keep_float),
            "methods": method_rows(model, images, labels, calibration, keep_float, name)}  # fmt: skip


# ---- real images for ImageNet-size models -------------------------------------------------


def photo_crops(photo: torch.Tensor, count: int, columns: tuple[int, int], seed: int) -> list:
    """``count`` random square crops (3, SIDE, SIDE) in [0, 1] of ``photo`` (3, H, W), each
    inside the column range ``columns`` (so two ranges give crops that share no pixel)."""
    g = torch.Generator().manual_seed(seed)
    left, right = columns
    height = photo.shape[1]
    crops = []
    for _ in range(count):
        side = int(torch.randint(SIDE // 2, min(height, right - left) + 1, (1,), generator=g))
        top = int(torch.randint(0, height - side + 1, (1,), generator=g))
        x = left + int(torch.randint(0, right - left - side + 1, (1,), generator=g))
        crops.append(resize_image(photo[:, top : top + side, x : x + side], (SIDE, SIDE)))
    return crops


def digits(split: str, count: int) -> list:
    """``count`` mnist5k digits of ``split`` as (3, SIDE, SIDE) in [0, 1] (grey to RGB)."""
    data, _ = build_dataset("mnist5k", split, img_size=SIDE, in_chans=3)
    images, _ = dataset_tensors(data, limit=count, seed=0)
    return list(images)


def make_images(folder: Path, crops: int, count_digits: int) -> None:
    """Write the real image set: ``folder/eval`` and ``folder/calibration`` (PNG, 224 RGB)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [
        torch.from_numpy(p.copy()).permute(2, 0, 1).float() / 255
        for p in load_sample_images().images
    ]
    for split, half, mnist_split in (("eval", 0, "test"), ("calibration", 1, "train")):
        out = folder / split
        out.mkdir(parents=True, exist_ok=True)
        images = {}
        for index, (photo, label) in enumerate(zip(photos, ("china", "flower"), strict=True)):
            width = photo.shape[2] // 2
            columns = (half * width, (half + 1) * width)
            for i, crop in enumerate(photo_crops(photo, crops, columns, seed=10 * index + half)):
                images[f"{label}-{i:02d}"] = crop
        for i, digit in enumerate(digits(mnist_split, count_digits)):
            images[f"digit-{i:02d}"] = digit
        for stem, image in images.items():
            array = (image.permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy()
            Image.fromarray(array).save(out / f"{stem}.png")
    print(f"wrote {folder}/eval and {folder}/calibration", file=sys.stderr)


def image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(evaluation files, calibration files) of ``folder`` (see the module's docstring)."""

    def listed(f: Path) -> list[Path]:
        return sorted(p for p in f.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))

    if (folder / "eval").is_dir() and (folder / "calibration").is_dir():
        return listed(folder / "eval"), listed(folder / "calibration")
    files = listed(folder)
    return files[0::2], files[1::2]


def prepared(files: list[Path], config: object) -> torch.Tensor:
    """The files as the model takes them: its size, crop, interpolation and normalisation."""
    size = config.img_size if isinstance(config.img_size, tuple) else (config.img_size,) * 2
    images = [
        resize_image(load_image(f, config.in_chans), size, config.crop_pct, config.interpolation)
        for f in files
    ]
    return normalize(torch.stack(images), tuple(config.mean), tuple(config.std))


def architecture(name: str, seed: int = 0) -> nn.Module:
    """Registered model ``name`` with its default initialisation and a seeded random head
    (normal, std 0.02, zero bias), so that its logits differ between classes."""
    torch.manual_seed(seed)
    model = create_model(name).eval()
    head = model.get_submodule("head")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.02)
        head.bias.zero_()
    return model


def measure_images(name: str, model: nn.Module, folder: Path, source: str) -> dict:
    """``model`` on the real images of ``folder``: agreement and Δlogit of each method."""
    eval_files, calibration_files = image_files(folder)
    images = prepared(eval_files, model.config)
    calibration = prepared(calibration_files, model.config)
    start = time.perf_counter()
    rows = method_rows(model, images, None, calibration, name=name)
    return {"name": name, "source": source, "images": str(folder),
            "family": model.config.family, "eval_images": images.shape[0],
            "calibration_images": calibration.shape[0],
            "seconds": round(time.perf_counter() - start, 1), "methods": rows}  # fmt: skip


# ---- tables -------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    """Markdown: one row per trained model and method."""
    lines = [
        "| model | fp32 top-1 | method | int8 top-1 | drop (points) | agreement "
        "| max abs Δlogit | mean abs Δlogit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for method, m in r["methods"].items():
            if "refused" in m:
                lines.append(f"| {r['name']} | | {method} | refused | | | | |")
                continue
            lines.append(
                f"| {r['name']} | {m['fp32_top1']:.4f} | {method} | {m['int8_top1']:.4f} | "
                f"{m['drop_points']:+.2f} | {m['agreement']:.4f} | {m['max_abs_dlogit']:.3f} "
                f"| {m['mean_abs_dlogit']:.4f} |"
            )
    return "\n".join(lines)


def image_table(results: list[dict]) -> str:
    """Markdown: one row per architecture and method, Δlogit also relative to the spread."""
    lines = [
        "| model | method | agreement | max abs Δlogit | mean abs Δlogit | fp32 logit std "
        "| max / std | mean / std |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for method, m in r["methods"].items():
            if "refused" in m:
                lines.append(f"| {r['name']} | {method} | refused | | | | | |")
                continue
            std = m["fp32_logit_std"]
            lines.append(
                f"| {r['name']} | {method} | {m['agreement']:.4f} | {m['max_abs_dlogit']:.4f} "
                f"| {m['mean_abs_dlogit']:.4f} | {std:.4f} | {m['max_abs_dlogit'] / std:.3f} "
                f"| {m['mean_abs_dlogit'] / std:.4f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="NAME=CHECKPOINT@DATASET")
    parser.add_argument("--calibration-images", type=int, default=512)
    parser.add_argument(
        "--keep-float", action="append", default=[], metavar="NAME:LAYER",
        help="keep LAYER of model NAME in float too (repeatable)",
    )  # fmt: skip
    parser.add_argument("--make-images", type=Path, metavar="DIR")
    parser.add_argument("--crops", type=int, default=16, help="crops per photograph")
    parser.add_argument("--digits", type=int, default=16, help="digits per split")
    parser.add_argument("--images", type=Path, metavar="DIR")
    parser.add_argument("--architectures", default="", help="registered names, comma-separated")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PATH")
    parser.add_argument("--out", default="benchmarks/results/int8-accuracy.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.make_images:
        make_images(args.make_images, args.crops, args.digits)
    keep: dict[str, list[str]] = {}
    for item in args.keep_float:
        model_name, _, layer = item.partition(":")
        keep.setdefault(model_name, []).append(layer)
    results = []
    for spec in args.models:
        name, _, rest = spec.partition("=")
        checkpoint, _, dataset = rest.rpartition("@")
        results.append(
            measure(name, checkpoint, dataset, args.calibration_images, tuple(keep.get(name, ())))
        )
    on_images = []
    if args.images:
        for name in filter(None, args.architectures.split(",")):
            on_images.append(measure_images(name, architecture(name), args.images, "default init"))
        for path in args.checkpoint:
            on_images.append(measure_images(path, load_model(path).eval(), args.images, path))
    if not results and not on_images:
        return
    atomic_write_json(args.out, {
        "cpu": this_cpu().model, "machine": platform.machine(), "torch": torch.__version__,
        "results": results, "real_images": on_images,
    })  # fmt: skip
    print(table(results) if results else "")
    print(image_table(on_images) if on_images else "")


if __name__ == "__main__":
    main()
