"""`MlpMixer` against timm's Mixer, and both against their GEMMs alone.

Every cell of {S/16, B/16} × {fp32, bf16 autocast, bf16 weights} × {inference, training step
(forward, cross-entropy, backward, AdamW)}, on the CPU, one process, implementations timed in
interleaved rounds (one step of each in turn, the order alternating), so load changes hit
all of them alike. Per cell it reports:

- ``vs timm``: timm's step time ÷ ours (> 1: we are faster), wall clock and process CPU time;
- ``GEMM share``: our step time ÷ the time of the same model's matrix products alone — the
  same (M, K, N) shapes, dtype and threads, forward products for inference and forward +
  input-gradient + weight-gradient products for training, timed in the same rounds
  (``torch.mm`` into preallocated outputs). 1.00 would mean all glue is free.

The baselines (``--baselines``, each timed in the same rounds, our weights copied over):

- ``timm``: timm's ``MlpMixer`` built with ``act_layer=nn.GELU(approximate="tanh")``, the same
  function as ours (the paper's tanh GELU; checked: logits agree);
- ``timm-erf``: timm's default model, what ``timm.create_model`` gives a user (exact erf GELU:
  a slightly different function, cheaper in ATen);
- ``timm-compiled`` / ``timm-erf-compiled``: the same under ``torch.compile`` (inductor's
  defaults; the first warm-up step compiles, so keep ``--warmup`` >= 1).

``--aten-gelu`` adds our model with the fused GELU kernel switched off
(``MLPMIXER_FUSED_GELU=0``), to measure that lever in the same rounds; ``--switched-off VAR``
(repeatable) adds our model with the fast piece that ``VAR=0`` switches off (e.g.
``MLPMIXER_LAYOUTS``): before and after a piece, side by side.

timm is optional and never a dependency of the project. Install it without its dependencies
(it would pull torchvision, and with it a CUDA torch):

    pip install --no-deps timm

If torchvision is missing, this script puts ``benchmarks/standin`` (a minimal torchvision
stand-in, only names timm imports) on ``sys.path`` for the one ``import timm``. Then:

    python benchmarks/vs_timm.py --threads 1 --batch-size 16            # ~15 min on 2 cores
    python benchmarks/vs_timm.py --baselines timm,timm-erf,timm-erf-compiled --models s16
    python benchmarks/vs_timm.py --models s16 --precisions bf16-autocast --modes train

With several threads on a shared machine, run under ``OMP_WAIT_POLICY=PASSIVE``: OpenMP's
threads otherwise spin while they wait for a preempted sibling, and process CPU time then
counts the spinning (measured here: S/16 bf16 training at 2 threads, 5.7 s of CPU per step
against 1.2 s at 1 thread).

Writes benchmarks/results/vs-timm-<date>.json (or ``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import functools
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlpmixer.checkpoints.timm_format import state_to_timm, timm_architecture
from mlpmixer.cpu_kind import CAP_VARIABLES, CPUINFO, effective_cpu, native_bf16, this_cpu
from mlpmixer.fileio import atomic_write_text
from mlpmixer.models import create_model
from mlpmixer.models.fast import pieces
from mlpmixer.precision import autocast

HERE = Path(__file__).resolve().parent
MODELS = {"s16": "mixer_s16_224", "b16": "mixer_b16_224"}
PRECISIONS = ("fp32", "bf16-autocast", "bf16")
# baseline name -> (timm's GELU form, under torch.compile)
BASELINES = {
    "timm": ("tanh", False),
    "timm-erf": ("none", False),
    "timm-compiled": ("tanh", True),
    "timm-erf-compiled": ("none", True),
}
INSTALL_HINT = (
    "timm is not installed. Install it without its dependencies: `pip install --no-deps timm` "
    "(this script supplies a torchvision stand-in when torchvision is missing)."
)


# ---------------------------------------------------------------- timm


def import_timm() -> Any:
    """The timm module; with a torchvision stand-in on sys.path for this import if needed."""
    if importlib.util.find_spec("timm") is None:
        raise SystemExit(INSTALL_HINT)
    if importlib.util.find_spec("torchvision") is not None:
        import timm

        return timm
    standin = str(HERE / "standin")
    sys.path.insert(0, standin)
    try:
        import timm
    finally:
        sys.path.remove(standin)
    return timm


def timm_model(timm: Any, ours: nn.Module, gelu: str) -> nn.Module:
    """timm's Mixer of ``ours``' architecture with ``ours``' weights and GELU form ``gelu``."""
    cfg = ours.config
    theirs = timm.create_model(
        timm_architecture(cfg),
        pretrained=False,
        num_classes=cfg.num_classes,
        act_layer=functools.partial(nn.GELU, approximate=gelu),
    )
    theirs.load_state_dict(state_to_timm(ours.state_dict()))
    return theirs


def models_pair(name: str, timm: Any) -> tuple[nn.Module, dict[str, nn.Module], float]:
    """Ours, timm's by GELU form ("tanh": ours' function, "none": timm's default), and the
    largest relative logit gap between ours and the same-function timm model."""
    torch.manual_seed(0)
    ours = create_model(name)
    nn.init.normal_(ours.head.weight, std=0.02)  # the zero-initialised head would hide errors
    theirs = {gelu: timm_model(timm, ours, gelu) for gelu in ("tanh", "none")}
    cfg = ours.config
    images = torch.randn(2, cfg.in_chans, *cfg.img_size)
    with torch.no_grad():
        a, b = ours.eval()(images), theirs[cfg.gelu].eval()(images)
    return ours, theirs, ((a - b).abs().max() / b.abs().max()).item()


# ---------------------------------------------------------------- steps


def _autocast(precision: str) -> contextlib.AbstractContextManager:
    return autocast("cpu", "bf16" if precision == "bf16-autocast" else "fp32")


def model_step(
    module: nn.Module, precision: str, mode: str, batch: int, compiled: bool = False
) -> Callable[[], None]:
    """One inference forward pass or one training step of a private copy of ``module``
    (with ``compiled``, of ``torch.compile`` of it: the first call compiles)."""
    module = copy.deepcopy(module)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    module = module.to(dtype)
    if mode == "infer":
        module.eval()
    run = torch.compile(module) if compiled else module
    g = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, 224, 224, generator=g).to(dtype)  # both models: 224², RGB
    if mode == "infer":

        def infer() -> None:
            with torch.no_grad(), _autocast(precision):
                run(images)

        return infer
    module.train()
    labels = torch.randint(0, 1000, (batch,), generator=g)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5, weight_decay=0.05)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(precision):
            logits = run(images)
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()

    return train


def gemm_shapes(cfg: Any, batch: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every forward product: (M, K) @ (K, N), as written in the paper."""
    s, c = cfg.num_tokens, cfg.hidden_dim
    stem = (batch * s, cfg.in_chans * cfg.patch_size[0] * cfg.patch_size[1], c)
    block = [
        (batch * c, s, cfg.tokens_mlp_dim),  # token mixing, over the S axis for every channel
        (batch * c, cfg.tokens_mlp_dim, s),
        (batch * s, c, cfg.channels_mlp_dim),  # channel mixing, over C for every token
        (batch * s, cfg.channels_mlp_dim, c),
    ]
    return [stem, *block * cfg.num_blocks, (batch, c, cfg.num_classes)]


def gemm_step(cfg: Any, precision: str, mode: str, batch: int) -> Callable[[], None]:
    """The model's matrix products alone, into preallocated outputs.

    Training adds, per product, the input gradient dX = dY·W (not for the stem: images need
    none) and the weight gradient dW = dYᵀ·X, as autograd computes them.
    """
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    calls: list[Callable[[], Any]] = []
    for i, (m, k, n) in enumerate(gemm_shapes(cfg, batch)):
        x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        y = torch.empty(m, n, dtype=dtype)
        calls.append(functools.partial(torch.mm, x, w.t(), out=y))
        if mode == "train":
            dy, dx, dw = torch.randn(m, n, dtype=dtype), torch.empty_like(x), torch.empty_like(w)
            if i > 0:
                calls.append(functools.partial(torch.mm, dy, w, out=dx))
            calls.append(functools.partial(torch.mm, dy.t(), x, out=dw))

    def step() -> None:
        for call in calls:
            call()

    return step


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``$name=value`` inside; the fast pieces read their switches when deciding, so they are
    decided again on the way in and out (rules or cached measurements: microseconds)."""
    old = os.environ.get(name)
    os.environ[name] = value
    pieces.reset()
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old
        pieces.reset()


def switched_off(step: Callable[[], None], variable: str) -> Callable[[], None]:
    """``step`` with ``$variable=0`` (a fast piece's switch) while it runs."""

    def run() -> None:
        with _env(variable, "0"):
            step()

    return run


def without_fused_gelu(step: Callable[[], None]) -> Callable[[], None]:
    return switched_off(step, "MLPMIXER_FUSED_GELU")


# ---------------------------------------------------------------- timing


def time_interleaved(
    fns: dict[str, Callable[[], None]], warmup: int, repeats: int, min_time_s: float
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each call, the functions called in turn.

    Each round starts one function further along (and odd rounds run backwards), so that every
    function takes every position equally: measured here, the step that follows a given other
    step can be ~10% slower (heap and page state left behind), whichever model it is.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    out = {name: {"wall": [], "cpu": []} for name in names}
    start, rounds = time.perf_counter(), 0
    while rounds < repeats or time.perf_counter() - start < min_time_s * len(names):
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for name in order if rounds % 2 == 0 else reversed(order):
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            out[name]["wall"].append(time.perf_counter() - t0)
            out[name]["cpu"].append(time.process_time() - c0)
        rounds += 1
    return out


def _family_model() -> str:
    """``family F model M`` from /proc/cpuinfo (tells the CPU generation: an EPYC's marketing
    name is often just "AMD EPYC" in a VM), or "" elsewhere."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open(CPUINFO, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return f"family {fields['cpu family']} model {fields['model']}" if "model" in fields else ""


def machine() -> dict[str, Any]:
    kind = this_cpu()
    return {
        "cpu": kind.model,
        "cpu_family_model": _family_model(),
        # the ISA caps (docs/troubleshooting.md) and what the libraries may use under them
        "isa_caps": {name: os.environ[name] for name in CAP_VARIABLES if name in os.environ},
        "native_bf16": native_bf16(effective_cpu()),
        "vendor": kind.vendor,
        "avx512": "avx512f" in kind.flags,
        "amx": "amx_bf16" in kind.flags,
        "logical_cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # PASSIVE: no spinning in CPU time
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------- the suite


def run_cell(
    ours: nn.Module,
    theirs: dict[str, nn.Module],
    precision: str,
    mode: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    batch = args.batch_size
    fns = {"mlpmixer": model_step(ours, precision, mode, batch)}
    for name in args.baselines.split(","):
        gelu, compiled = BASELINES[name]
        fns[name] = model_step(theirs[gelu], precision, mode, batch, compiled)
    if not args.skip_gemm:
        fns["gemm"] = gemm_step(ours.config, precision, mode, batch)
    if args.aten_gelu:
        fns["mlpmixer_aten_gelu"] = without_fused_gelu(model_step(ours, precision, mode, batch))
    for variable in args.switched_off:
        fns[f"mlpmixer_{variable}=0"] = switched_off(
            model_step(ours, precision, mode, batch), variable
        )
    load_before = os.getloadavg()[0]
    times = time_interleaved(fns, args.warmup, args.repeats, args.min_time)
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    ours_s = med["mlpmixer"]
    row: dict[str, Any] = {
        "precision": precision,
        "mode": mode,
        "batch": batch,
        "ms": {n: round(1e3 * m["wall"], 1) for n, m in med.items()},
        "cpu_ms": {n: round(1e3 * m["cpu"], 1) for n, m in med.items()},
        "steps": {n: len(t["wall"]) for n, t in times.items()},
        # every round, in order: the spread says how far apart two runs of one cell can land
        "cpu_rounds_ms": {n: [round(1e3 * c, 1) for c in t["cpu"]] for n, t in times.items()},
        "load_1min": [load_before, os.getloadavg()[0]],
        # baseline's time / ours (> 1: we are faster), by clock
        "vs": {
            n: {clock: med[n][clock] / ours_s[clock] for clock in ("wall", "cpu")}
            for n in args.baselines.split(",")
        },
    }
    if "timm" in row["vs"]:  # the keys of the earlier results files
        row["vs_timm"] = row["vs"]["timm"]["wall"]
        row["vs_timm_cpu_time"] = row["vs"]["timm"]["cpu"]
    if "gemm" in med:
        row["gemm_share"] = ours_s["wall"] / med["gemm"]["wall"]
        row["gemm_share_cpu_time"] = ours_s["cpu"] / med["gemm"]["cpu"]
        if "timm" in med:
            row["timm_gemm_share"] = med["timm"]["wall"] / med["gemm"]["wall"]
    if args.aten_gelu:
        row["fused_gelu_speedup"] = med["mlpmixer_aten_gelu"]["wall"] / ours_s["wall"]
    for variable in args.switched_off:  # (> 1: the piece wins; the baselines' ratios to it too)
        off = med[f"mlpmixer_{variable}=0"]
        row.setdefault("piece_speedup", {})[variable] = {
            clock: off[clock] / ours_s[clock] for clock in ("wall", "cpu")
        }
        row.setdefault("vs_switched_off", {})[variable] = {
            n: med[n]["cpu"] / off["cpu"] for n in args.baselines.split(",")
        }
    return row


def markdown_header(baselines: list[str]) -> str:
    cols = ["model", "precision", "mode", "batch", "CPU ms ours"]
    cols += [f"vs {b} (CPU / wall)" for b in baselines]
    cols += ["GEMM share (CPU)", "fused GELU gain"]
    return "| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|"


def markdown_row(model: str, row: dict[str, Any]) -> str:
    target = 1.10 if row["mode"] == "infer" else 1.25
    cells = [
        model,
        row["precision"],
        row["mode"],
        str(row["batch"]),
        str(row["cpu_ms"]["mlpmixer"]),
    ]
    for ratio in row["vs"].values():
        cells.append(f"**{ratio['cpu']:.2f}x** / {ratio['wall']:.2f}x")
    share = row.get("gemm_share_cpu_time")
    cells.append("" if share is None else f"{share:.2f} {'≤' if share <= target else '>'} {target}")
    cells.append(f"{row['fused_gelu_speedup']:.2f}x" if "fused_gelu_speedup" in row else "")
    return "| " + " | ".join(cells) + " |"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="s16,b16", help=f"comma list of {sorted(MODELS)}")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--modes", default="infer,train")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="at least this many rounds")
    parser.add_argument("--min-time", type=float, default=0.0, help="seconds per implementation")
    parser.add_argument("--aten-gelu", action="store_true", help="add ours with ATen's GELU")
    parser.add_argument(
        "--switched-off",
        action="append",
        default=[],
        metavar="VAR",
        help="add ours with the fast piece VAR=0 switches off (repeatable)",
    )
    parser.add_argument(
        "--baselines", default="timm,timm-erf", help=f"comma list of {', '.join(BASELINES)}"
    )
    parser.add_argument("--skip-gemm", action="store_true", help="no GEMM-only step")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    for value, allowed, what in (
        (args.models, MODELS, "model"),
        (args.precisions, PRECISIONS, "precision"),
        (args.modes, ("infer", "train"), "mode"),
        (args.baselines, BASELINES, "baseline"),
    ):
        for item in value.split(","):
            if item not in allowed:
                parser.error(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    timm = import_timm()
    result: dict[str, Any] = {
        "benchmark": "vs-timm",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/vs_timm.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "timm": timm.__version__,
        "runs": [],
    }
    out = args.out or HERE / "results" / f"vs-timm-{dt.date.today().isoformat()}.json"
    print(markdown_header(args.baselines.split(",")), flush=True)
    for key in args.models.split(","):
        ours, theirs, gap = models_pair(MODELS[key], timm)
        for precision in args.precisions.split(","):
            for mode in args.modes.split(","):
                row = run_cell(ours, theirs, precision, mode, args)
                row.update(model=MODELS[key], logits_rel_gap_fp32=gap)
                row["fast_pieces"] = [d.to_dict() for d in pieces.decisions()]
                result["runs"].append(row)
                print(markdown_row(MODELS[key], row), flush=True)
                atomic_write_text(out, json.dumps(result, indent=1) + "\n")  # each cell kept
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
