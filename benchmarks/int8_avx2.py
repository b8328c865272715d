"""Where static int8's time goes on an AVX2-only CPU (no VNNI), and what might reach the 1.5×
target there.

``python benchmarks/int8_avx2.py (--checkpoint CKPT [--calibration DATA] | --arch NAME)
[--isa avx2|native] [--batch-sizes 32,128] [--out benchmarks/results/int8-avx2-<model>.json]``

Three measurements, each 1 thread, process CPU time, interleaved rounds, best round:

1. ``gemm``: the int8 GEMM against the fp32 GEMM at the model's Linear shapes, called
   directly: oneDNN's ``qlinear_pointwise`` (uint8 activations × int8 per-channel weights,
   prepacked: what Inductor calls for static int8; fp32 out, uint8 out as between two int8
   layers, with the GELU fused as oneDNN's post-op as Inductor fuses every fc1, and on a
   column-major input) against ``mkldnn._linear_pointwise`` (oneDNN fp32, prepacked: what Inductor
   calls for fp32 with freezing) and ``torch.nn.functional.linear`` (ATen: MKL/oneDNN), and
   the cost of quantizing the input (ATen's ``quantize_per_tensor``) at that shape.
2. ``profile``: the compiled static graph under torch.profiler with Inductor's per-kernel
   records: its time by category (int8 GEMM, float GEMM, kernels that quantize or dequantize,
   the rest).
3. ``variants``: our fp32 (eager, compiled) against static compiled with every Linear int8
   (``static-all``), with the channel-mixing Linears only (``static-channel``: the
   token-mixing ones kept in float) and with 7-bit activations (``static-all-u7``: the
   quantizer's ``reduce_range``, which keeps AVX2's 16-bit pair sums from saturating), at
   each batch size; and each one's top-1 agreement and max |Δlogit| with fp32 on the
   calibration images, computed by this ISA's kernels.

Run under ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``
(``--isa avx2``, the default: a child process) to see an AVX-512 VNNI machine as an AVX2-only one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from int8 import AVX2_CAPS, compiled, model_under_test


def linear_shapes(cfg, batch: int) -> dict[str, tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """(M, K, N) of each distinct Mixer Linear at ``batch``: token mixing runs on the
    (B*C, S) transposed tokens, channel mixing on the (B*S, C) tokens."""
    tokens = (cfg.img_size[0] // cfg.patch_size[0]) * (cfg.img_size[1] // cfg.patch_size[1])
    c, dt, dc = cfg.hidden_dim, cfg.tokens_mlp_dim, cfg.channels_mlp_dim
    return {
        "token.fc1": (batch * c, tokens, dt),
        "token.fc2": (batch * c, dt, tokens),
        "channel.fc1": (batch * tokens, c, dc),
        "channel.fc2": (batch * tokens, dc, c),
    }


def gemm_runs(m: int, k: int, n: int) -> dict[str, Callable[[], object]]:
    """The GEMM contenders at one shape (see the module docstring)."""
    x = torch.randn(m, k)
    w = torch.randn(n, k) / k**0.5
    b = torch.zeros(n)
    packed_fp32 = torch.ops.mkldnn._reorder_linear_weight(w, m)
    w_scale = w.abs().amax(dim=1) / 127
    w_int8 = torch.round(w / w_scale[:, None]).clamp(-128, 127).to(torch.int8)
    packed_int8 = torch.ops.onednn.qlinear_prepack(w_int8, [m, k])
    x_scale, x_zp = float(x.abs().max() / 127), 128
    qx = torch.quantize_per_tensor(x, x_scale, x_zp, torch.quint8).int_repr()
    scale_t, zp_t = torch.tensor(x_scale), torch.tensor(x_zp)
    w_zp = torch.zeros(n, dtype=torch.long)

    def int8(out_dtype: torch.dtype, out_scale: float = 1.0, out_zp: int = 0, post: str = "none",
             algorithm: str = "", x: torch.Tensor = qx):  # type: ignore[no-untyped-def]  # fmt: skip
        return lambda: torch.ops.onednn.qlinear_pointwise.tensor(
            x, scale_t, zp_t, packed_int8, w_scale, w_zp, b, out_scale, out_zp, out_dtype,
            post, [None], algorithm,
        )  # fmt: skip

    strided = qx.t().contiguous().t()  # the same values in column-major order

    return {
        "fp32-onednn": lambda: torch.ops.mkldnn._linear_pointwise(
            x, packed_fp32, b, "none", [], ""
        ),
        "fp32-aten": lambda: F.linear(x, w, b),
        "int8-out-fp32": int8(torch.float32),
        "int8-out-uint8": int8(torch.uint8, 0.05, 128),
        # the fc1 of every MLP as Inductor fuses it: GELU as oneDNN's post-op, uint8 out
        "int8-gelu-out-uint8": int8(torch.uint8, 0.05, 10, "gelu", "tanh"),
        "int8-strided-input": int8(torch.float32, x=strided),
        # ATen's vectorised quantize kernel: what an Inductor-fused quantize costs, about
        "quantize-input": lambda: torch.quantize_per_tensor(x, x_scale, x_zp, torch.quint8),
    }


def best_of(runs: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, float]:
    """Best per-call CPU seconds of each run over interleaved rounds."""
    best = {k: float("inf") for k in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            run()
            start = time.process_time()
            for _ in range(calls):
                run()
            best[name] = min(best[name], (time.process_time() - start) / calls)
    return best


@torch.no_grad()
def gemm_table(cfg, batch_sizes: list[int], rounds: int) -> dict:  # type: ignore[no-untyped-def]
    out = {}
    for batch in batch_sizes:
        for layer, (m, k, n) in linear_shapes(cfg, batch).items():
            times = best_of(gemm_runs(m, k, n), rounds, calls=max(3, int(2e8 // (m * k * n))))
            base = times["fp32-onednn"]
            out[f"b{batch} {layer} {m}x{k}x{n}"] = {
                "gflops_fp32_onednn": round(2 * m * k * n / base / 1e9, 1),
                "speedup_vs_fp32_onednn": {k: round(base / t, 3) for k, t in times.items()},
            }
            print(f"gemm b{batch} {layer} {m}x{k}x{n}: " + ", ".join(
                f"{k} {base / t:.2f}x" for k, t in times.items()), file=sys.stderr)  # fmt: skip
    return out


CATEGORIES = (  # first match wins; Inductor names its C++ kernels after the ops fused in
    ("int8 GEMM (onednn::qlinear)", ("qlinear",)),
    ("float GEMM", ("mkldnn::_linear", "mkl::", "aten::mm", "aten::addmm", "aten::linear")),
    ("kernels that quantize/dequantize", ("quantize", "dequantize")),
)


def categorise(events: list[tuple[str, float]]) -> dict[str, float]:
    """Shares of the total self CPU time by category."""
    total = sum(t for _, t in events) or 1.0
    shares: dict[str, float] = {}
    for name, t in events:
        cat = next((c for c, keys in CATEGORIES if any(k in name for k in keys)), "other")
        shares[cat] = shares.get(cat, 0.0) + t / total
    return {k: round(v, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


@torch.no_grad()
def profile(run: Callable[[torch.Tensor], object], images: torch.Tensor) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    run(images)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            run(images)
    events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    events = [e for e in events if not e[0].startswith(("Torch-Compiled", "CompiledFunction"))]
    total = sum(t for _, t in events) or 1.0
    top = sorted(events, key=lambda e: -e[1])[:12]
    return {"by_category": categorise(events),
            "top": [{"op": k, "share": round(t / total, 3)} for k, t in top]}  # fmt: skip


@torch.no_grad()
def agreement(contenders: dict, images: torch.Tensor) -> dict:
    """Each compiled contender against fp32 eager on ``images``: top-1 agreement and the
    largest |logit difference| (the int8 kernels of *this* ISA: saturation shows here)."""
    ref = contenders["fp32"](images)
    out = {}
    for name, run in contenders.items():
        if name != "fp32":
            y = run(images)
            out[name] = {"top1_agreement": round((y.argmax(1) == ref.argmax(1)).float().mean().item(), 4),
                         "max_abs_dlogit": round((y - ref).abs().max().item(), 4),
                         "max_abs_logit": round(ref.abs().max().item(), 3)}  # fmt: skip
    return out


def measure(args: argparse.Namespace) -> dict:
    import torch._inductor.config as inductor

    from mlpmixer.cpu_kind import effective_cpu, this_cpu
    from mlpmixer.deploy import quantize
    from mlpmixer.deploy.plain import default_keep, linear_names, plain_copy
    from mlpmixer.deploy.speed import best_times, speedups
    from mlpmixer.deploy.static import quantize_static

    torch.set_num_threads(1)
    model, calibration = model_under_test(args)
    cfg = model.config
    result = {"cpu": this_cpu().model, "isa": args.isa, "torch": torch.__version__,
              "model": args.checkpoint or args.arch, "effective_flags": sorted(
                  f for f in effective_cpu().flags if f.startswith(("avx", "amx")))}  # fmt: skip
    result["gemm"] = gemm_table(cfg, args.batch_sizes, args.rounds)
    if args.gemm_only:
        return result
    inductor.freezing = True
    token = tuple(n for n in linear_names(model) if ".token_mixing." in n)
    images = {b: torch.randn(b, cfg.in_chans, *cfg.img_size) for b in args.batch_sizes}
    variants = {
        "static-all": quantize(model, "static", calibration=calibration).inner,
        "static-channel": quantize(
            model, "static", calibration=calibration, keep_float=(*default_keep(model), *token)
        ).inner,
        "static-all-u7": quantize_static(
            plain_copy(model), calibration, default_keep(model), reduce_range=True
        ),
    }
    inductor.cpp.enable_kernel_profile = True
    contenders: dict[str, object] = {"fp32": model}
    seconds = {}
    for name, module in {"fp32": model, **variants}.items():
        contenders[f"{name}-compiled"], seconds[name] = compiled(module, images)
    result["compile_seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    result["agreement_with_fp32"] = agreement(contenders, calibration[:256])
    for batch in args.batch_sizes:
        times = best_times(contenders, images[batch], rounds=args.rounds, calls=args.calls)
        ratios = speedups(times, "fp32")
        result[f"batch{batch}"] = {k: round(v, 3) for k, v in ratios.items()}
        print(f"[{args.isa}] batch {batch}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()),
              file=sys.stderr)  # fmt: skip
    big = max(args.batch_sizes)
    result[f"profiles_batch{big}"] = {
        k: profile(contenders[k], images[big]) for k in contenders if k != "fp32"
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint")
    source.add_argument("--arch")
    parser.add_argument("--calibration", default=None)
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--batch-sizes", type=lambda s: [int(b) for b in s.split(",")],
                        default=[32, 128])  # fmt: skip
    parser.add_argument("--isa", choices=["native", "avx2"], default="avx2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--gemm-only", action="store_true", help="the GEMM table alone")
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    env = {**os.environ, **(AVX2_CAPS if args.isa == "avx2" else {})}
    out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child"], env=env,
                         check=True, stdout=subprocess.PIPE, text=True)  # fmt: skip
    from mlpmixer.fileio import atomic_write_json

    name = (args.checkpoint or args.arch).rstrip("/").split("/")[-1]
    path = args.out or f"benchmarks/results/int8-avx2-{name}-{args.isa}.json"
    atomic_write_json(path, json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
