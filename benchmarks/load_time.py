"""How long a model takes to come into being: built fresh (against timm's build), loaded, resized.

Two measurements, run from the repository root:

``python benchmarks/load_time.py [--repeats 3]``
    Mixer-B/16 (60M parameters): median seconds for `load_model` and `from_pretrained` of a
    saved model, `resize(448)`, and a fresh build (loading used to initialise every weight
    randomly and then overwrite it). Prints one JSON line.

``python benchmarks/load_time.py --build [--models all] [--rounds 5] [--baseline-src DIR]``
    The process CPU time of a fresh ``create_model(name)`` for every registered
    model, ours against timm's ``timm.create_model(name)`` where timm has the model, and against
    an earlier version of this package (``--baseline-src``, e.g. the previous main's ``src``).
    Each implementation lives in its own warm worker process (imports and first-use costs paid
    before timing); the parent asks them for one build each in turn, the order rotating every
    round, so load changes on a shared machine hit all of them alike. Per model it reports the
    medians and the ratios ``timm / ours`` and ``baseline / ours`` (> 1: ours builds in less
    CPU time), writes them with the CPU named to ``--out`` and prints a Markdown table.
    timm is optional (``pip install --no-deps timm``; benchmarks/vs_timm.py puts the torchvision
    stand-in on the path for its import).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_times(repeats: int) -> dict[str, Any]:
    """Wall seconds to load, resize and build a Mixer-B/16."""
    import torch

    import mlpmixer
    from mlpmixer import MixerConfig, MlpMixer

    torch.manual_seed(0)
    model = MlpMixer(MixerConfig())  # Mixer-B/16 at 224
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "b16"
        model.save(folder)
        return {
            "threads": torch.get_num_threads(),
            "load_model_s": _median_seconds(lambda: mlpmixer.load_model(folder), repeats),
            "from_pretrained_s": _median_seconds(lambda: MlpMixer.from_pretrained(folder), repeats),
            "resize_448_s": _median_seconds(lambda: model.resize(448), repeats),
            "init_s": _median_seconds(lambda: MlpMixer(MixerConfig()), repeats),
        }


# ---------------------------------------------------------------- build time, worker side


def _builder(kind: str):
    """``name -> model`` for ``kind``: "ours" (mlpmixer on sys.path) or "timm"."""
    if kind == "timm":
        sys.path.insert(0, str(HERE))
        from vs_timm import import_timm

        return import_timm().create_model
    import mlpmixer

    return mlpmixer.create_model


def worker(kind: str, threads: int) -> None:
    """Answer each model name read from stdin with one JSON line: the CPU seconds of its build."""
    import torch

    torch.set_num_threads(threads)
    build = _builder(kind)
    for line in sys.stdin:
        name = line.strip()
        gc.collect()
        torch.manual_seed(0)
        start = time.process_time()
        model = build(name)
        seconds = time.process_time() - start
        del model
        gc.collect()
        print(json.dumps({"model": name, "cpu_s": seconds}), flush=True)


# ---------------------------------------------------------------- build time, parent side


class Worker:
    """One warm worker process: ``build(name)`` returns the CPU seconds of one fresh build."""

    def __init__(self, kind: str, src: Path, threads: int, warmup: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, __file__, "--worker", kind, "--threads", str(threads)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.build(warmup)  # imports and first-use costs, not timed

    def build(self, name: str) -> float:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the worker {self.proc.args[3]} died building {name}")
        return json.loads(line)["cpu_s"]

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait()


def _cpu_family() -> dict[str, str]:
    """/proc/cpuinfo's "cpu family" and "model" (a "model name" such as "AMD EPYC" alone does
    not say which generation)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            lines = f.read().split("\n\n")[0].splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return {"cpu_family": fields.get("cpu family", ""), "cpu_model": fields.get("model", "")}


def machine(threads: int) -> dict[str, Any]:
    import platform

    import torch

    from mlpmixer.cpu_kind import this_cpu

    kind = this_cpu()
    return {
        "cpu": kind.model,
        "vendor": kind.vendor,
        **_cpu_family(),
        "avx512": "avx512f" in kind.flags,
        "avx512_bf16": "avx512_bf16" in kind.flags,
        "amx": "amx_bf16" in kind.flags,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def build_times(
    models: list[str], rounds: int, threads: int, baseline: Path | None, use_timm: bool
) -> dict[str, Any]:
    """Interleaved rounds of one build per implementation and model; medians and ratios."""
    timm_names: set[str] = set()
    workers = {"ours": Worker("ours", SRC, threads, "mixer_t2_8")}
    if use_timm:
        workers["timm"] = Worker("timm", SRC, threads, "mixer_s32_224")
        sys.path.insert(0, str(HERE))
        from vs_timm import import_timm

        timm_names = set(import_timm().list_models())
    if baseline is not None:
        workers["baseline"] = Worker("ours", baseline, threads, "mixer_t2_8")
    times: dict[str, dict[str, list[float]]] = {m: {} for m in models}
    for r in range(rounds):
        for i, model in enumerate(models):
            kinds = [k for k in workers if k != "timm" or model in timm_names]
            shift = (r + i) % len(kinds)  # who goes first rotates
            for kind in kinds[shift:] + kinds[:shift]:
                times[model].setdefault(kind, []).append(workers[kind].build(model))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    for w in workers.values():
        w.close()
    rows = {}
    for model, by_kind in times.items():
        row: dict[str, Any] = {f"{k}_cpu_s": v for k, v in by_kind.items()}
        ours = statistics.median(by_kind["ours"])
        row["ours_median_s"] = round(ours, 4)
        for other in ("timm", "baseline"):
            if other in by_kind:
                row[f"{other}_median_s"] = round(statistics.median(by_kind[other]), 4)
                ratios = [o / s for o, s in zip(by_kind[other], by_kind["ours"], strict=True)]
                row[f"{other}_over_ours"] = round(statistics.median(ratios), 3)
        rows[model] = row
    return rows


def markdown(rows: dict[str, Any]) -> str:
    lines = [
        "| model | ours CPU s | timm CPU s | timm / ours | previous CPU s | previous / ours |",
        "|---|---|---|---|---|---|",
    ]
    for model, row in rows.items():
        cells = [model, f"{row['ours_median_s']:.3f}"]
        for other in ("timm", "baseline"):
            if f"{other}_median_s" in row:
                cells += [f"{row[f'{other}_median_s']:.3f}", f"{row[f'{other}_over_ours']:.2f}x"]
            else:
                cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="load timing: repeats per measurement"
    )
    parser.add_argument("--build", action="store_true", help="fresh-build CPU time vs timm's")
    parser.add_argument("--models", default="all", help="comma-separated registered names, or all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each worker")
    parser.add_argument("--baseline-src", type=Path, help="an earlier mlpmixer's src folder")
    parser.add_argument("--no-timm", action="store_true", help="skip timm's builds")
    parser.add_argument("--out", type=Path, help="results JSON (build mode)")
    parser.add_argument("--worker", choices=["ours", "timm"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.threads)
        return 0
    if not args.build:
        print(json.dumps(load_times(args.repeats)))
        return 0
    sys.path.insert(0, str(SRC))
    import mlpmixer
    from mlpmixer.fileio import atomic_write_text

    models = mlpmixer.list_models() if args.models == "all" else args.models.split(",")
    rows = build_times(models, args.rounds, args.threads, args.baseline_src, not args.no_timm)
    result = {
        "what": "process CPU seconds of one fresh create_model(name), warm worker per "
        "implementation, interleaved rounds (order rotating); ratios > 1: ours builds faster",
        "command": "python benchmarks/load_time.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(args.threads),
        "rounds": args.rounds,
        "models": rows,
    }
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
