"""int8 speed on CPU, side by side in one run: batch-1 latency and batch-32 throughput of each
int8 method against our fp32 model, timm's fp32 Mixer and ONNX Runtime fp32 / int8, each torch
contender eager and under torch.compile.

``python benchmarks/int8.py (--checkpoint CKPT [--calibration DATA] | --arch NAME)
[--isa native|avx2|both] [--batch-sizes 1,32] [--only A,B] [--no-compile] [--no-ort]
[--profile A,B] [--out benchmarks/results/int8-speed-<cpu>.json]``

Contenders (1 thread, process CPU time, interleaved rounds, best round of each; ratios to
``fp32``, our model with its fast layers): ``timm`` (timm's ``MlpMixer`` of the same shape with
our weights copied, the same GELU form), ``weight-only``, ``dynamic`` (torchao), ``static``
(the PT2E graph run eagerly: quantize/dequantize around float products), each of these and
``fp32`` also as ``<name>-compiled`` (torch.compile, Inductor freezing: for static, oneDNN's
int8 kernels; compile seconds recorded), ``ort-fp32`` (our ONNX export),
``ort-int8-dynamic`` (``quantize_dynamic``, per-channel int8 weights) and ``ort-int8-static``
(``quantize_static``, QDQ, per-channel weights, calibrated on the same images as ``static``).
``--arch`` (e.g. ``mixer_s16_224``) times a registered model with random weights, calibrated
on random images: speed only. ``--profile`` lists the top ops (torch.profiler, self CPU time)
of the contenders named, at the largest batch; compiled ones by Inductor kernel.

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


def timm_fp32(model: torch.nn.Module) -> torch.nn.Module:
    """timm's Mixer of ``model``'s shape holding ``model``'s weights (its GELU form: ours is
    tanh, timm's default erf; the same function is what makes the two comparable)."""
    import functools

    from vs_timm import import_timm

    from mlpmixer.checkpoints.timm_format import state_to_timm, timm_spec

    timm = import_timm()
    cfg = model.config
    spec = timm_spec(cfg)
    act = functools.partial(torch.nn.GELU, approximate=cfg.gelu)
    if spec.unbuildable is None:  # a registered shape (mixer_s16_224...)
        theirs = timm.create_model(spec.architecture, pretrained=False,
                                   num_classes=cfg.num_classes, act_layer=act, **spec.model_args)  # fmt: skip
    else:  # the docs' small Mixers: timm's class with the spec's arguments
        theirs = timm.models.MlpMixer(**spec.model_args, num_classes=cfg.num_classes, act_layer=act)
    theirs.load_state_dict(state_to_timm(model.state_dict()))
    return theirs.eval()


def compiled(module: torch.nn.Module, images: dict[int, torch.Tensor]) -> tuple[object, float]:
    """``torch.compile`` of ``module`` (Inductor, freezing on: weights as constants, what lets
    oneDNN's int8 kernels in), compiled for every batch size; and the seconds that took."""
    run = torch.compile(module, dynamic=False)
    start = time.perf_counter()
    with torch.no_grad():
        for x in images.values():
            run(x)
    return run, time.perf_counter() - start


def model_under_test(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor]:
    """The fp32 model (a checkpoint, or ``--arch`` with random weights: speed only) and the
    static calibration images (the data set's, or random ones with ``--arch``)."""
    import mlpmixer
    from mlpmixer.deploy.calibration import calibration_images

    if args.checkpoint:
        model = mlpmixer.load_model(args.checkpoint).eval()
    else:
        torch.manual_seed(0)
        model = mlpmixer.create_model(args.arch).eval()
    cfg = model.config
    if args.calibration:
        return model, calibration_images(cfg, args.calibration, args.calibration_images)
    generator = torch.Generator().manual_seed(0)
    shape = (args.calibration_images, cfg.in_chans, *cfg.img_size)
    return model, torch.randn(shape, generator=generator)


def measure(args: argparse.Namespace) -> dict:
    import mlpmixer
    from mlpmixer.cpu_kind import effective_cpu, this_cpu
    from mlpmixer.deploy import quantize, save_quantized
    from mlpmixer.deploy.speed import best_times, speedups

    torch.set_num_threads(1)
    model, calibration = model_under_test(args)
    cfg = model.config
    wanted = set(args.only.split(",")) if args.only else None
    eager = {"fp32": model}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        timm_gap = None
        if wanted is None or {"timm", "timm-compiled"} & wanted:
            eager["timm"] = timm_fp32(model)
            with torch.no_grad():  # the same model: logits agree to float rounding
                timm_gap = (eager["timm"](calibration[:8]) - model(calibration[:8])).abs().max()
            timm_gap = float(timm_gap)
        for method in ("weight-only", "dynamic", "static"):
            if wanted is None or method in wanted or f"{method}-compiled" in wanted:
                q = quantize(model, method, calibration=calibration)
                eager[method] = q
                folder = save_quantized(q, Path(tmp) / method)
                sizes[method] = sum(p.stat().st_size for p in folder.iterdir())
        mlpmixer.save_model(model, Path(tmp) / "fp32")
        sizes["fp32"] = sum(p.stat().st_size for p in (Path(tmp) / "fp32").glob("*.safetensors"))
        images = {b: torch.randn(b, cfg.in_chans, *cfg.img_size) for b in args.batch_sizes}
        contenders: dict[str, object] = {}
        compile_seconds: dict[str, float | str] = {}
        import torch._inductor.config as inductor

        inductor.freezing = True
        # per-kernel names in the profiles of compiled graphs (a small cost on every kernel)
        inductor.cpp.enable_kernel_profile = "-compiled" in args.profile
        for name, module in eager.items():
            contenders[name] = module
            if args.no_compile or (wanted is not None and f"{name}-compiled" not in wanted):
                continue
            target = module.inner if hasattr(module, "inner") else module
            try:
                contenders[f"{name}-compiled"], seconds = compiled(target, images)
                compile_seconds[name] = round(seconds, 1)
            except Exception as error:  # recorded, not fatal: the other contenders still run
                compile_seconds[name] = f"failed: {type(error).__name__}: {error}"[:300]
        if not args.no_ort:
            for key, (run, size) in ort_sessions(model, calibration, Path(tmp)).items():
                contenders[key] = run
                sizes[key] = size
    if wanted is not None:
        contenders = {k: v for k, v in contenders.items() if k == "fp32" or k in wanted}
    result = {"cpu": this_cpu().model, "isa": args.isa, "effective_flags": sorted(
        f for f in effective_cpu().flags if f.startswith(("avx", "amx")))}  # fmt: skip
    result.update(checkpoint=args.checkpoint or args.arch, model=cfg.to_dict(),
                  torch=torch.__version__, compile_seconds=compile_seconds, bytes=sizes,
                  timm_max_abs_dlogit=timm_gap)  # fmt: skip
    for batch in sorted(args.batch_sizes, reverse=True):
        calls = args.calls if batch > 1 else args.calls * 10
        times = best_times(contenders, images[batch], rounds=args.rounds, calls=calls)
        ratios = speedups(times, "fp32")
        result[f"batch{batch}"] = {
            "speedup_vs_fp32": {k: round(v, 3) for k, v in ratios.items()},
            "ms_per_call_best": {k: round(1e3 * v, 4) for k, v in times.items()},
        }
        print(f"[{args.isa}] batch {batch}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()),
              file=sys.stderr)  # fmt: skip
    if args.profile:
        big = max(args.batch_sizes)
        result[f"profiles_batch{big}"] = {
            k: profile_top(contenders[k], images[big]) for k in ["fp32", *args.profile.split(",")]
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a trained model")
    source.add_argument("--arch", help="a registered model with random weights (speed only)")
    parser.add_argument("--calibration", default=None,
                        help="data set for static calibration (default: random images)")  # fmt: skip
    parser.add_argument("--batch-sizes", type=lambda s: [int(b) for b in s.split(",")],
                        default=[1, 32])  # fmt: skip
    parser.add_argument("--only", default=None, help="comma list of contenders (fp32 always)")
    parser.add_argument("--profile", default="", help="comma list of contenders to profile")
    parser.add_argument("--no-ort", action="store_true")
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
