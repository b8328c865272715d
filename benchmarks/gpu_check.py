"""GPU check: Mixer-B/16 in bf16 at batch 256, ours against timm, eager and compiled, with MFU.

Run by ``benchmarks/gpu_check.sh`` (``make gpu-check``) after the CUDA tests, whose JUnit
report (``--junit``) is summarised into the same JSON. Per implementation (``mlpmixer``, and
``timm`` when it is importable) and per mode (inference: bf16 weights, no autograd; training:
fp32 weights under bf16 autocast, cross-entropy, backward, AdamW), eagerly and under
``torch.compile``: the median step time, images/s, TFLOP/s from the analytic FLOPs and MFU
against the bf16 matmul peak measured on the same GPU in the same process. The implementations
of one mode and variant are timed in interleaved rounds.

The targets (``summary``): inference MFU >= 0.65, training MFU >= 0.45, and our best step at
least 1.05x faster than ``torch.compile(timm)``.

Then fp8 inference against bf16 (issue 29 item 4; ``fp8`` in the JSON): the same model and
batch, its Linears in fp8 by `mlpmixer.deploy.fp8.to_fp8` (torchao float8, per-row scales),
against the same weights in bf16, eager and compiled: the speed ratio, top-1 agreement and
the largest |logit difference| on the batch's random images (the model has its initial
weights, with a random head: the zero head would make every logit 0; this checks the numerics,
not accuracy). On a GPU without fp8 (compute capability < 8.9) the step is skipped with the
reason; ``--dry-run`` runs it with a bf16 copy standing in for the fp8 model.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu-check.json    # needs CUDA
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu-check.json        # CPU, seconds

``--dry-run`` runs the same code on the CPU with a tiny model, batch 2 and no compile: it
checks the script and the JSON's shape, not the GPU (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch

from mlpmixer.bench.peak import measure_matmul_peak
from mlpmixer.bench.run import (
    BenchOptions,
    implementations,
    inference_step,
    machine_info,
    training_step,
)
from mlpmixer.deploy import fp8
from mlpmixer.errors import ConfigError
from mlpmixer.fileio import atomic_write_text
from mlpmixer.models import create_model, flops_per_image
from mlpmixer.timing import time_calls

HERE = Path(__file__).resolve().parent
TARGETS = {"mfu_infer": 0.65, "mfu_train": 0.45, "vs_timm_compiled": 1.05}
MODES = ("infer", "train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mixer_b16_224")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per implementation")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode")
    parser.add_argument("--junit", type=Path, default=None, help="the CUDA tests' JUnit XML")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model: checks shape")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.model, args.batch_size, args.device = "mixer_t4_28", 2, "cpu"
        args.repeats, args.min_time, args.no_compile = 1, 0.0, True
    elif not torch.cuda.is_available():
        parser.error("no CUDA device: this check needs an NVIDIA GPU (or use --dry-run)")
    return args


def test_counts(junit: Path | None) -> dict[str, Any] | None:
    """passed/failed/errors/skipped of a pytest JUnit XML report (None without one)."""
    if junit is None:
        return None
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors")}
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {
        "passed": count["tests"] - count["failures"] - count["errors"] - skipped,
        "failed": count["failures"],
        "errors": count["errors"],
        "skipped": skipped,
        "failed_tests": failed,
    }


def time_variant(
    model: torch.nn.Module, options: BenchOptions, flops_per_step: dict[str, float], peak: float
) -> list[dict[str, Any]]:
    """Rows of every implementation and mode for one variant (eager or compiled)."""
    impls, _ = implementations(model, compare=True)
    impls.pop("plain", None)  # the plain reference is a CPU-path check, not a GPU baseline
    rows = []
    for mode in MODES:
        steps = {}
        for name, module in impls.items():
            module = copy.deepcopy(module)  # the steps cast and move their module
            steps[name] = (
                inference_step(module, model.config, options, options.batch_size)
                if mode == "infer"
                else training_step(module, model.config, options)
            )
        warmup = options.warmup + (2 if options.compile else 0)  # compile, then graph capture
        times = time_calls(steps, options.device, warmup, options.repeats, options.min_time_s)
        for name, seconds in times.items():
            step_s = statistics.median(seconds)
            tflops = flops_per_step[mode] / step_s / 1e12
            rows.append(
                {
                    "impl": name,
                    "mode": mode,
                    "compiled": options.compile,
                    "step_ms": round(1e3 * step_s, 3),
                    "images_per_s": options.batch_size / step_s,
                    "tflops": tflops,
                    "mfu": tflops / peak,
                    "steps": len(seconds),
                }
            )
    return rows


def _step_ms(rows: list[dict[str, Any]], impl: str, mode: str, compiled: bool) -> float | None:
    for row in rows:
        if (row["impl"], row["mode"], row["compiled"]) == (impl, mode, compiled):
            return row["step_ms"]
    return None


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: our best MFU (eager or compiled), our best step vs timm's eager and
    compiled steps (> 1: we are faster), and whether each target is met (None: not measured)."""
    out: dict[str, Any] = {"targets": TARGETS}
    for mode in MODES:
        ours = [r for r in rows if r["impl"] == "mlpmixer" and r["mode"] == mode]
        best = min(ours, key=lambda r: r["step_ms"]) if ours else None
        timm_eager = _step_ms(rows, "timm", mode, False)
        timm_compiled = _step_ms(rows, "timm", mode, True)
        ratio = {
            "vs_timm": timm_eager / best["step_ms"] if best and timm_eager else None,
            "vs_timm_compiled": timm_compiled / best["step_ms"] if best and timm_compiled else None,
        }
        mfu = best["mfu"] if best else None
        out[mode] = {
            "best": None if best is None else ("compiled" if best["compiled"] else "eager"),
            "mfu": mfu,
            **ratio,
            "met": {
                "mfu": None if mfu is None else mfu >= TARGETS[f"mfu_{mode}"],
                "vs_timm_compiled": None
                if ratio["vs_timm_compiled"] is None
                else ratio["vs_timm_compiled"] >= TARGETS["vs_timm_compiled"],
            },
        }
    return out


def fp8_step(model: torch.nn.Module, args: argparse.Namespace) -> dict[str, Any]:
    """fp8 against bf16 inference on ``args.device`` (see the module's docstring): one row per
    variant (eager, compiled) in ``rows``, or ``skipped`` with the reason where fp8 cannot run
    here (in a dry run, measured anyway with a bf16 stand-in: ``stand_in``)."""
    device = torch.device(args.device)
    reason = fp8.fp8_refusal(device)
    if reason is not None and not args.dry_run:
        return {"measured": False, "skipped": reason, "layers": {}}
    model = _with_random_head(model)
    reference = fp8.bf16_copy(model, device)
    out: dict[str, Any] = {"measured": False, "skipped": reason, "layers": {}}
    if reason is None:
        try:
            built = fp8.to_fp8(model, device)
        except ConfigError as err:  # torchao is missing
            return {**out, "skipped": str(err)}
        candidate = built.model
        out.update(measured=True, layers={"fp8": built.fp8_layers, "kept_bf16": built.kept_bf16})
    else:  # the dry run: the measuring code runs; its numbers mean nothing
        candidate, out["stand_in"] = fp8.stand_in(reference), "a bf16 copy (no fp8 here)"
    cfg = model.config
    g = torch.Generator().manual_seed(2)
    images = torch.randn(args.batch_size, cfg.in_chans, *cfg.img_size, generator=g)
    out["rows"] = []
    for compiled in (False,) if args.no_compile else (False, True):
        print(f"timing fp8 {'compiled' if compiled else 'eager'} ...", file=sys.stderr, flush=True)
        check = fp8.measure(reference, candidate, images, args.batch_size, compiled,
                            args.repeats, args.min_time)  # fmt: skip
        out["rows"].append(check.to_dict())
    return out


def _with_random_head(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose classifier is random (std 0.02): a fresh model's head is zero,
    and zero logits would hide any difference between fp8 and bf16."""
    from mlpmixer.models.spec import family_spec

    model = copy.deepcopy(model)
    head = model.get_submodule(family_spec(model.config.family).classifier)
    torch.nn.init.normal_(head.weight, std=0.02, generator=torch.Generator().manual_seed(1))
    return model


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(args.model)
    forward = flops_per_image(model.config) * args.batch_size
    flops = {"infer": forward, "train": 3 * forward}
    sizes = (256, 512) if args.dry_run else None
    peak = measure_matmul_peak(device, "bf16", sizes, min_time_s=0.0 if args.dry_run else 1.0)
    rows: list[dict[str, Any]] = []
    for compiled in (False,) if args.no_compile else (False, True):
        options = BenchOptions(
            batch_size=args.batch_size,
            dtype="bf16",
            device=args.device,
            compile=compiled,
            compile_mode=args.compile_mode,
            warmup=1 if args.dry_run else 3,
            repeats=args.repeats,
            min_time_s=args.min_time,
        )
        print(f"timing {'compiled' if compiled else 'eager'} ...", file=sys.stderr, flush=True)
        rows += time_variant(model, options, flops, peak.tflops)
    try:
        fp8_result = fp8_step(model, args)
    except Exception as err:  # the bf16 rows above must not be lost; main() exits 1
        fp8_result = {"measured": False, "skipped": None, "error": f"{type(err).__name__}: {err}"}
    return {
        "check": "gpu-check",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": args.dry_run,
        "model": args.model,
        "batch_size": args.batch_size,
        "dtype": "bf16",
        "machine": machine_info(device),
        "matmul_peak": peak.to_dict(),
        "tests": test_counts(args.junit),
        "runs": rows,
        "summary": summarize(rows),
        "fp8": fp8_result,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = args.out or HERE / "results" / f"gpu-check-{stamp}.json"
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    for mode in MODES:
        s = result["summary"][mode]
        print(f"{mode}: MFU {s['mfu']}, vs timm {s['vs_timm']}, vs compiled timm "
              f"{s['vs_timm_compiled']}, met {s['met']}")  # fmt: skip
    for row in result["fp8"].get("rows", []):
        print(f"fp8 {'compiled' if row['compiled'] else 'eager'}: {row['speedup']:.2f}x bf16, "
              f"top-1 agreement {row['top1_agreement']:.3f}, max |dlogit| "
              f"{row['max_abs_dlogit']:.3g} (largest |logit| {row['max_abs_logit']:.3g})"
              f"{' [stand-in]' if 'stand_in' in result['fp8'] else ''}")  # fmt: skip
    if result["fp8"]["skipped"]:
        print(f"fp8 not measured: {result['fp8']['skipped']}")
    if "error" in result["fp8"]:
        print(f"error: the fp8 step failed: {result['fp8']['error']}", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    tests = result["tests"]
    failed = tests and (tests["failed"] or tests["errors"])
    return 1 if failed or "error" in result["fp8"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
