"""int8 speed on CPU, side by side in one run: batch-1 latency and batch-32 throughput of each
int8 method against our fp32 model and ONNX Runtime fp32 / int8.

``python benchmarks/int8.py --checkpoint CKPT --calibration DATA [--isa native|avx2|both]
[--no-compile] [--out benchmarks/results/int8-speed-<cpu>.json]``

Contenders (1 thread, process CPU time, interleaved rounds, best round of each; ratios to
``fp32``, our model with its fast layers): ``weight-only``, ``dynamic`` (torchao, eager),
``static`` (the PT2E graph run eagerly: quantize/dequantize around float products),
``static-compiled`` (the same graph under torch.compile with Inductor freezing: oneDNN int8
kernels; compile time recorded), ``ort-fp32`` (our ONNX export), ``ort-int8-dynamic``
(``quantize_dynamic``, per-channel int8 weights) and ``ort-int8-static`` (``quantize_static``,
QDQ, per-channel weights, calibrated on the same images as ``static``). The methods that are
slower than fp32 are profiled (torch.profiler, top ops by self CPU time).

``--isa avx2`` runs the measurement in a child process under
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``: an AVX-512
machine measured as an AVX2-only one (no VNNI). ``both`` runs native, then avx2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

AVX2_CAPS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}


def ort_sessions(model, calibration: torch.Tensor, folder: Path) -> dict:
    """ONNX Runtime fp32 and int8 (dynamic per-channel, static QDQ) sessions, 1 thread."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    from mlpmixer.export import export_model

    fp32 = folder / "fp32.onnx"
    export_model(model, fp32, "onnx", verify=False)
    name = "images"

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{name: calibration[i : i + 32].numpy()}
                                 for i in range(0, calibration.shape[0], 32)])  # fmt: skip

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.batches, None)

    import onnx

    name = onnx.load(str(fp32)).graph.input[0].name
    quantize_dynamic(str(fp32), str(folder / "dyn.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8)  # fmt: skip
    quantize_static(str(fp32), str(folder / "static.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sessions = {}
    for key, file in (("ort-fp32", fp32), ("ort-int8-dynamic", folder / "dyn.onnx"),
                      ("ort-int8-static", folder / "static.onnx")):  # fmt: skip
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        sessions[key] = (
            lambda x, s=session: torch.from_numpy(s.run(None, {name: x.numpy()})[0]),
            file.stat().st_size,
        )
    return sessions


def profile_top(model, images: torch.Tensor, count: int = 6) -> list[dict]:
    """The ops taking the most self CPU time over 3 calls."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            model(images)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3), "calls": e.count}
            for e in events[:count]]  # fmt: skip


def measure(args: argparse.Namespace) -> dict:
    import mlpmixer
    from mlpmixer.cpu_kind import effective_cpu, this_cpu
    from mlpmixer.deploy import quantize, save_quantized
    from mlpmixer.deploy.calibration import calibration_images
    from mlpmixer.deploy.speed import best_times, speedups

    torch.set_num_threads(1)
    model = mlpmixer.load_model(args.checkpoint).eval()
    cfg = model.config
    calibration = calibration_images(cfg, args.calibration, args.calibration_images)
    contenders = {"fp32": model}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("weight-only", "dynamic", "static"):
            q = quantize(model, method, calibration=calibration)
            contenders[method] = q
            sizes[method] = sum(
                p.stat().st_size for p in save_quantized(q, Path(tmp) / method).iterdir()
            )
        mlpmixer.save_model(model, Path(tmp) / "fp32")
        sizes["fp32"] = sum(p.stat().st_size for p in (Path(tmp) / "fp32").glob("*.safetensors"))
        compile_seconds = None
        images = {b: torch.randn(b, cfg.in_chans, *cfg.img_size) for b in (1, 32)}
        if not args.no_compile:
            import torch._inductor.config as inductor

            inductor.freezing = True  # weights as constants: what lets oneDNN's int8 kernels in
            compiled = torch.compile(contenders["static"].inner, dynamic=False)
            start = time.perf_counter()
            with torch.no_grad():
                for x in images.values():
                    compiled(x)
            compile_seconds = time.perf_counter() - start
            contenders["static-compiled"] = compiled
        for key, (run, size) in ort_sessions(model, calibration, Path(tmp)).items():
            contenders[key] = run
            sizes[key] = size
    result = {"cpu": this_cpu().model, "isa": args.isa, "effective_flags": sorted(
        f for f in effective_cpu().flags if f.startswith(("avx", "amx")))}  # fmt: skip
    result.update(checkpoint=args.checkpoint, model=cfg.to_dict(), torch=torch.__version__,
                  compile_seconds=compile_seconds, bytes=sizes)  # fmt: skip
    for batch, calls in ((32, args.calls), (1, args.calls * 10)):
        times = best_times(contenders, images[batch], rounds=args.rounds, calls=calls)
        ratios = speedups(times, "fp32")
        result[f"batch{batch}"] = {
            "speedup_vs_fp32": {k: round(v, 3) for k, v in ratios.items()},
            "ms_per_call_best": {k: round(1e3 * v, 4) for k, v in times.items()},
        }
        print(f"[{args.isa}] batch {batch}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()),
              file=sys.stderr)  # fmt: skip
    slow = [k for k, v in result["batch32"]["speedup_vs_fp32"].items()
            if v < 1 and k in ("weight-only", "dynamic", "static")]  # fmt: skip
    result["profiles_batch32"] = {
        k: profile_top(contenders[k], images[32]) for k in ["fp32", *slow]
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--calibration", required=True, help="data set for static calibration")
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--isa", choices=["native", "avx2", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    runs = []
    for isa in ["native", "avx2"] if args.isa == "both" else [args.isa]:
        env = {**os.environ, **(AVX2_CAPS if isa == "avx2" else {})}
        child = [a for a in sys.argv[1:]]
        if "--isa" in child:
            i = child.index("--isa")
            del child[i : i + 2]
        out = subprocess.run([sys.executable, __file__, *child, "--isa", isa, "--child"],
                             env=env, check=True, stdout=subprocess.PIPE, text=True)  # fmt: skip
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    from mlpmixer.cpu_kind import this_cpu
    from mlpmixer.fileio import atomic_write_json

    slug = "".join(c if c.isalnum() else "-" for c in this_cpu().model.lower()).strip("-")
    path = args.out or f"benchmarks/results/int8-speed-{slug}.json"
    atomic_write_json(path, {"cpu": this_cpu().model, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
