"""The vs-timm table over CPU kinds and thread counts, from the JSON files `vs_timm.py` wrote.

Every cell of {S/16, B/16} × {native, AVX-512 without bf16 caps, AVX2 caps} × {1, 2 threads} ×
{fp32, bf16 autocast} × {inference, training step}: ours ÷ timm (tanh GELU) and ÷ timm's
default (erf), process CPU time, and the GEMM shares (a step's time ÷ its products' alone).
A cell no file has is listed as not measured; a cell below ``--target`` is marked.

    python benchmarks/vs_timm_table.py benchmarks/results/vs-timm-item4-*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ISA = {  # the caps a run was made under -> its column name
    "": "native",
    "AVX512_CORE": "AVX-512 without bf16 caps",
    "AVX2": "AVX2 caps",
}
MODELS = ("mixer_s16_224", "mixer_b16_224")
PRECISIONS = ("fp32", "bf16-autocast")
MODES = ("infer", "train")


def _isa(run_file: dict, name: str) -> str:
    caps = run_file["machine"].get("isa_caps")
    if caps is not None:
        return ISA.get(caps.get("ONEDNN_MAX_CPU_ISA", ""), str(caps))
    return next((v for k, v in (("avx512core", ISA["AVX512_CORE"]), ("avx2", ISA["AVX2"]))
                 if k in name), "native")  # fmt: skip


def cells(paths: list[Path]) -> dict[tuple, dict]:
    """(model, isa, threads, precision, mode) -> the run (the later file wins: by the JSON's
    ``date``, then by modification time for files without one; a fresh checkout gives every
    file the same modification time, so that alone would let the file name decide)."""
    found: dict[tuple, dict] = {}
    loaded = [(json.loads(p.read_text(encoding="utf-8")), p) for p in paths]
    for data, path in sorted(loaded, key=lambda dp: (dp[0].get("date", ""), dp[1].stat().st_mtime)):
        isa, threads = _isa(data, path.name), data["machine"]["threads"]
        for run in data["runs"]:
            key = (run["model"], isa, threads, run["precision"], run["mode"])
            found[key] = {**run, "file": path.name}
    return found


def _ratio(run: dict, baseline: str, target: float) -> str:
    value = run["vs"].get(baseline, {}).get("cpu")
    if value is None:
        return "—"
    text = f"{value:.2f}x"
    return f"**{text}**" if value < target else text


def table(found: dict[tuple, dict], target: float) -> str:
    lines = [
        "| model | CPU as | threads | precision | mode | vs timm (tanh) | vs timm-erf | "
        "GEMM share ours / timm-erf | steps | file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        for isa in ISA.values():
            for threads in (1, 2):
                for precision in PRECISIONS:
                    for mode in MODES:
                        run = found.get((model, isa, threads, precision, mode))
                        head = f"| {model.split('_')[1].upper()} | {isa} | {threads} | "
                        head += f"{precision} | {mode} | "
                        if run is None:
                            lines.append(head + "not measured | | | | |")
                            continue
                        share = run.get("gemm_share_cpu_time")
                        cpu = run["cpu_ms"]
                        erf = cpu.get("timm-erf", 0) / cpu["gemm"] if "gemm" in cpu else None
                        shares = f"{share:.2f} / {erf:.2f}" if share and erf else "—"
                        lines.append(
                            head + f"{_ratio(run, 'timm', target)} | "
                            f"{_ratio(run, 'timm-erf', target)} | {shares} | "
                            f"{run['steps']['mlpmixer']} | {run['file']} |"
                        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--target", type=float, default=1.05)
    args = parser.parse_args(argv)
    print(table(cells(args.files), args.target), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
