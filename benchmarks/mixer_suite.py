"""The performance suite: Mixer-S/16 and B/16, fp32 and bf16, inference and training.

Every configuration runs `mlpmixer.bench.run.benchmark` with ``compare=True``: the
library's `MlpMixer` and the plain implementation (`mlpmixer.models.plain.PlainMixer`,
transpose -> nn.Linear -> transpose) with the same weights, timed in interleaved rounds in
the same process, plus the dense-matmul peak of the same dtype for MFU.

    python benchmarks/mixer_suite.py                       # CPU, batch 32
    python benchmarks/mixer_suite.py --device cuda         # GPU, batch 256
    python benchmarks/mixer_suite.py --device cuda --compile --compile-mode max-autotune

Writes one JSON file with every result (default benchmarks/results/<device>-<date>.json) and
prints a Markdown table for benchmarks/README.md. Long by design (minutes): not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import torch

from mlpmixer.bench.run import BenchOptions, benchmark
from mlpmixer.fileio import atomic_write_text

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--models", default="mixer_s16_224,mixer_b16_224")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--modes", default="infer,train")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 CPU, 256 GPU")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--compile-mode", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    batch = args.batch_size or (256 if args.device.startswith("cuda") else 32)
    runs = []
    for model in args.models.split(","):
        for dtype in args.dtypes.split(","):
            for mode in args.modes.split(","):
                options = BenchOptions(
                    batch_size=batch,
                    dtype=dtype,
                    device=args.device,
                    mode=mode,
                    compile=args.compile,
                    compile_mode=args.compile_mode,
                    compare=True,
                    latency=mode == "infer",
                    threads=args.threads,
                    warmup=args.warmup,
                    repeats=args.repeats,
                    min_time_s=args.min_time,
                )
                print(f"{model} {dtype} {mode} batch {batch} ...", file=sys.stderr, flush=True)
                runs.append(benchmark(model, options))
                print(markdown_rows(runs[-1]), file=sys.stderr, flush=True)
    return {
        "suite": "mixer-suite",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "runs": runs,
    }


HEADER = (
    "| model | dtype | mode | impl | batch | ms/step (±) | img/s | img/s per core/GPU "
    "| TFLOP/s | MFU | vs plain | vs plain, CPU time | saved act. MB/img |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def markdown_rows(run: dict[str, Any]) -> str:
    """One Markdown table row per implementation of one benchmark run."""
    lines = []
    for r in run["results"]:
        per_unit = r.get("images_per_s_per_core", r.get("images_per_s_per_gpu"))
        ratio = run["ratios"].get(r["mode"], {}).get("mlpmixer_vs_plain")
        by_cpu = run.get("ratios_cpu_time", {}).get(r["mode"], {}).get("mlpmixer_vs_plain")
        ours = r["impl"] == "mlpmixer"
        saved = r.get("saved_activations_mb_per_image")
        mfu = "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(
            f"| {run['model']} | {run['options']['dtype']} | {r['mode']} | {r['impl']} "
            f"| {r['batch_size']} | {r['step_ms']['median']:.0f} (±{100 * r['step_ms']['spread']:.0f}%) "
            f"| {r['images_per_s']:.1f} | {per_unit:.1f} | {r['tflops']:.3f} | {mfu} "
            f"| {f'{ratio:.2f}x' if ours and ratio else ''} "
            f"| {f'{by_cpu:.2f}x' if ours and by_cpu else ''} "
            f"| {'' if saved is None else f'{saved:.1f}'} |"
        )
    return "\n".join(lines)


def markdown_table(suite: dict[str, Any]) -> str:
    return "\n".join([HEADER] + [markdown_rows(run) for run in suite["runs"]])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    suite = run_suite(args)
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M")
    out = args.out or HERE / "results" / f"{device}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(suite, indent=2) + "\n")
    machine = suite["runs"][0]["machine"]
    print(f"\nMachine: {machine.get('gpu', machine['cpu'])}, {machine['torch_threads']} threads, "
          f"torch {machine['torch']}\n")  # fmt: skip
    print(markdown_table(suite))
    print(f"\nwrote {out}")
    if device == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
