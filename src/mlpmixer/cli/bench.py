"""``mlpmixer bench``: throughput, MFU, latency and memory, printed as a table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from .options import (
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    device_option,
    precision_option,
    threads_option,
)
from .out_dir import regular_file_or_new
from .printing import console, print_json
from .root import cli


@cli.command()
@click.option("--model", "model_name", default=None, help="Registered model name (see `models`).")
@click.option("--checkpoint", default=None, help="Or any checkpoint `load_model` reads.")
@click.option("--batch-size", type=POSITIVE_INT, default=32, show_default=True)
@precision_option("Number format: fp32, or bf16/fp16 (weights cast; see --infer-autocast).")
@device_option()
@click.option(
    "--mode", type=click.Choice(["infer", "train", "both"]), default="both", show_default=True
)
@click.option(
    "--compile/--no-compile",
    "compile_model",
    default=False,
    show_default=True,
    help="torch.compile (inductor) the models.",
)
@click.option(
    "--compile-mode",
    default=None,
    help="torch.compile mode: default, max-autotune, reduce-overhead (CUDA graphs).",
)
@click.option(
    "--freeze/--no-freeze",
    default=True,
    show_default=True,
    help="Compiled inference: inductor freezing (constant, prepacked weights).",
)
@click.option(
    "--infer-autocast",
    is_flag=True,
    help="bf16/fp16 inference under autocast with fp32 weights (default: cast weights).",
)
@click.option("--compare", is_flag=True, help="Also run the plain implementation (and timm).")
@click.option("--grad-checkpointing", is_flag=True, help="Activation checkpointing in training.")
@click.option(
    "--latency/--no-latency", default=True, show_default=True, help="Batch-1 latency percentiles."
)
@threads_option()
@click.option(
    "--warmup", type=NON_NEGATIVE_INT, default=2, show_default=True, help="Warm-up steps."
)
@click.option(
    "--repeats", type=POSITIVE_INT, default=5, show_default=True, help="Minimum timed steps."
)
@click.option(
    "--min-time",
    type=NON_NEGATIVE_FLOAT,
    default=3.0,
    show_default=True,
    help="Minimum timed seconds per implementation.",
)
@click.option(
    "--peak/--no-peak",
    default=True,
    show_default=True,
    help="Measure the matmul peak (needed for MFU).",
)
@click.option(
    "--gelu",
    type=click.Choice(["tanh", "none"]),
    default=None,
    help="Override the model's GELU (a speed experiment: changes the outputs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=lambda ctx, param, value: regular_file_or_new(value, "--out"),
    help="Write JSON here too.",
)
def bench(model_name: str | None, checkpoint: str | None, batch_size: int, precision: str, device: str,
          mode: str, compile_model: bool, compile_mode: str | None, freeze: bool,
          infer_autocast: bool, compare: bool, grad_checkpointing: bool, latency: bool,
          threads: int | None, warmup: int, repeats: int, min_time: float, peak: bool,
          gelu: str | None, as_json: bool, out: Path | None) -> None:  # fmt: skip
    """Throughput, MFU, batch-1 latency and memory; --compare runs a plain Mixer alongside.

    MFU is against a same-dtype matmul measured on the same device in the same run.
    """
    from ..bench.run import BenchOptions, benchmark
    from ..errors import ConfigError
    from ..fileio import atomic_write_json
    from ..progress import Heartbeat

    if (model_name is None) == (checkpoint is None):
        raise ConfigError("give exactly one of --model NAME or --checkpoint PATH")
    options = BenchOptions(
        batch_size=batch_size, dtype=precision, device=device, mode=mode, compile=compile_model,
        compile_mode=compile_mode, freeze=freeze, infer_autocast=infer_autocast,
        compare=compare, grad_checkpointing=grad_checkpointing, latency=latency,
        threads=threads, warmup=warmup, repeats=repeats, min_time_s=min_time, peak=peak,
        gelu=gelu,
    )  # fmt: skip
    with Heartbeat(logging.getLogger("mlpmixer.bench"), "bench"):  # a line at least every ~10 s
        result = benchmark(model_name or checkpoint, options)
    if out is not None:
        atomic_write_json(out, result)
    if as_json:
        print_json(result)
        return
    _print_bench(result)
    if out is not None:
        console.print(f"wrote {out}")


def _print_bench(result: dict[str, Any]) -> None:
    machine, peak = result["machine"], result.get("matmul_peak")
    opts = result["options"]
    console.print(
        f"{result['model']}, batch {opts['batch_size']}, {opts['dtype']}, {opts['device']}"
        f"{', compiled' if opts['compile'] else ''} -- {machine['cpu']}, "
        f"{machine['torch_threads']} threads, torch {machine['torch']}",
        highlight=False,
    )
    unit = "/core" if opts["device"] == "cpu" else "/GPU"
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("impl", "mode", "ms/step ±", "img/s", unit, "TFLOP/s", "MFU", "MB", "act/img"):
        table.add_column(column, justify="left" if column in ("impl", "mode") else "right",
                         no_wrap=True)  # fmt: skip
    for r in result["results"]:
        saved = r.get("saved_activations_mb_per_image")
        table.add_row(
            r["impl"], r["mode"],
            f"{r['step_ms']['median']:.1f} ±{100 * r['step_ms']['spread']:.0f}%",
            f"{r['images_per_s']:.1f}",
            f"{r.get('images_per_s_per_core', r.get('images_per_s_per_gpu')):.1f}",
            f"{r['tflops']:.3f}", "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
            f"{r['peak_memory_mb']:.0f}", "" if saved is None else f"{saved:.2f}",
        )  # fmt: skip
    Console(width=max(console.width, 100), markup=False, highlight=False, emoji=False).print(table)
    for r in result["results"]:
        if "latency_ms_batch1" in r:
            lat = r["latency_ms_batch1"]
            console.print(
                f"{r['impl']} batch-1 latency: p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, "
                f"p99 {lat['p99']:.2f} ms"
            )
    if peak:
        console.print(
            f"matmul peak ({peak['dtype']}, {peak['size']}x{peak['size']}, "
            f"{peak.get('library', 'aten')}): "
            f"{peak['tflops']:.3f} TFLOP/s; model {result['gflops_per_image']:.2f} GFLOP/image "
            "forward, training step counted as 3x"
        )
    cpu_ratios = result.get("ratios_cpu_time", {})
    for mode, ratios in result["ratios"].items():
        for name, value in ratios.items():
            by_cpu = cpu_ratios.get(mode, {}).get(name)
            cpu_note = f" ({by_cpu:.2f}x by process CPU time)" if by_cpu else ""
            console.print(
                f"{mode}: {name.replace('_vs_', ' / ')} = {value:.2f}x images/s{cpu_note}"
            )
    for note in result.get("notes", []):
        console.print(note)
    for d in result.get("fast_pieces", []):
        console.print(
            f"fast piece: {d['piece']} ({d['case']}): {d['choice']} -- {d['why']}",
            highlight=False,
        )
    console.print(
        "±: (p90 - p10) / median of the step times. MB: peak memory of one step "
        "(CUDA allocator; CPU resident set, approximate). act/img: MB of activations saved "
        "for backward per image."
    )
