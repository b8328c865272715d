"""int8 accuracy on real data: each method against the fp32 model, on the test split.

``python benchmarks/int8_accuracy.py NAME=CHECKPOINT@DATASET ... [--calibration-images 512]
[--out benchmarks/results/int8-accuracy.json]``

For every model: fp32 top-1, then per method (weight-only, dynamic, static) int8 top-1, the
drop in points, top-1 agreement with fp32 and max |Δlogit| over the whole test split. Static
is calibrated on a random sample of the *training* split (``--calibration-images``), so the
test images stay unseen. Prints a Markdown table; writes the JSON with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from mlpmixer import load_model
from mlpmixer.cpu_kind import this_cpu
from mlpmixer.deploy import METHODS, quantize
from mlpmixer.deploy.accuracy import compare
from mlpmixer.deploy.calibration import calibration_images, data_split
from mlpmixer.fileio import atomic_write_json


def measure(name: str, checkpoint: str, dataset: str, count: int) -> dict:
    model = load_model(checkpoint).eval()
    calibration = calibration_images(model.config, dataset, count)
    images, labels = data_split(model.config, dataset, "test")
    rows = {}
    for method in METHODS:
        q = quantize(model, method, calibration=calibration)
        rows[method] = compare(model, q, images, labels).to_dict()
        print(f"{name} {method}: {json.dumps(rows[method])}", file=sys.stderr)
    return {"name": name, "checkpoint": checkpoint, "dataset": dataset,
            "family": model.config.family, "calibration_images": calibration.shape[0],
            "methods": rows}  # fmt: skip


def table(results: list[dict]) -> str:
    lines = [
        "| model | fp32 top-1 | method | int8 top-1 | drop (points) | agreement | max abs Δlogit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for method, m in r["methods"].items():
            lines.append(
                f"| {r['name']} | {m['fp32_top1']:.4f} | {method} | {m['int8_top1']:.4f} | "
                f"{m['drop_points']:+.2f} | {m['agreement']:.4f} | {m['max_abs_dlogit']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="NAME=CHECKPOINT@DATASET")
    parser.add_argument("--calibration-images", type=int, default=512)
    parser.add_argument("--out", default="benchmarks/results/int8-accuracy.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for spec in args.models:
        name, _, rest = spec.partition("=")
        checkpoint, _, dataset = rest.rpartition("@")
        results.append(measure(name, checkpoint, dataset, args.calibration_images))
    cpu = this_cpu()
    atomic_write_json(args.out, {
        "cpu": cpu.model, "machine": platform.machine(), "torch": torch.__version__,
        "results": results,
    })  # fmt: skip
    print(table(results))


if __name__ == "__main__":
    main()
