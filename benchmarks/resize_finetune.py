"""Does resizing a trained model help at another resolution?

A small Mixer (patch 4) is trained on mnist5k at 28×28, resized to 20×20 and 36×36 (patch
grids 7 -> 5 and 7 -> 9: not integer multiples, so the token weights are resampled) and
fine-tuned for STEPS steps; the same architecture is trained from scratch at each size for the
same STEPS steps with the same recipe (mnist5k's AdamW, cosine, augmentation) and seed. Every
run is a plain `mlpmixer train` command, printed and recorded in the JSON.

    python benchmarks/resize_finetune.py --out benchmarks/results/resize-finetune-mnist5k.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlpmixer.cpu_kind import this_cpu

MODEL = [
    "--set",
    "model.overrides.hidden_dim=64",
    "--set",
    "model.overrides.num_blocks=4",
    "--set",
    "model.overrides.tokens_mlp_dim=32",
    "--set",
    "model.overrides.channels_mlp_dim=256",
]  # fmt: skip  (mixer_t4_28 made smaller: patch 4, C 64, 4 blocks)


def run(args: list[str], log: list[dict]) -> dict:
    command = ["mlpmixer", "train", "--dataset", "mnist5k", "--json", *args]
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "mlpmixer", *command[1:]], check=True, capture_output=True, text=True
    ).stdout
    summary = json.loads(out[out.index("{") :])
    log.append(
        {
            "command": shlex.join(command),
            "test_top1": summary["test_top1"],
            "test_loss": round(summary["test_loss"], 4),
            "seconds": round(time.perf_counter() - start, 1),
        }
    )
    print(f"  top-1 {summary['test_top1']:.3f}", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 36])
    parser.add_argument("--out", type=Path, required=True)
    a = parser.parse_args()
    common = ["--batch-size", str(a.batch_size), "--seed", "0", *MODEL]
    log: list[dict] = []
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base28"
        run([*common, "--steps", str(a.pretrain_steps), "--out", str(base)], log)
        for size in a.sizes:
            sized = [*common, "--steps", str(a.steps), "--set", f"model.img_size={size}"]
            scratch = run([*sized, "--out", str(Path(tmp) / f"scratch{size}")], log)
            tuned = run(
                [*sized, "--set", f"model.pretrained={base / 'model'}",
                 "--out", str(Path(tmp) / f"resized{size}")],
                log,
            )  # fmt: skip
            results[f"28->{size}"] = {
                "scratch_top1": scratch["test_top1"],
                "resized_finetuned_top1": tuned["test_top1"],
            }
    body = {
        "what": "mnist5k test top-1: resized from 28 and fine-tuned vs trained from scratch, "
        f"{a.steps} steps each (the 28×28 model: {a.pretrain_steps} steps)",
        "results": results,
        "runs": log,
        "machine": this_cpu().model,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    a.out.write_text(json.dumps(body, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
