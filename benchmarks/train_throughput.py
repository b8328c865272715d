"""Training throughput (images/second) per configuration, written to JSON.

One optimizer step = device-side augmentation + forward + loss + backward + global-norm
clipping + optimizer step, on synthetic images already on the device (so the number is the
model's training speed, not the data pipeline's). Each configuration runs ``--warmup`` steps,
then ``--steps`` timed steps (synchronised on CUDA).

    python benchmarks/train_throughput.py                       # CPU: the small models
    python benchmarks/train_throughput.py --device cuda --models mixer_b16_224 \
        --precisions fp32 bf16 --batch-sizes 64 128 --compile both --out gpu.json

Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from mlpmixer.models import create_model, model_config
from mlpmixer.train.augment import DeviceAugment
from mlpmixer.train.config import AugmentSection, OptimSection
from mlpmixer.train.loop import compute_loss
from mlpmixer.train.optim import build_optimizer

CPU_MODELS = ["mixer_t2_8", "mixer_t4_28", "mixer_s4_32"]
GPU_MODELS = ["mixer_s16_224", "mixer_b16_224", "mixer_l16_224"]
# the digits default's architecture: mixer_t2_8 retuned via overrides (see configs/digits.yaml)
NAMED_VARIANTS = {"digits-default": ("mixer_t2_8", {"img_size": 16, "patch_size": 4, "hidden_dim": 64,
                                                     "channels_mlp_dim": 256, "tokens_mlp_dim": 32})}  # fmt: skip


def _model(name: str) -> torch.nn.Module:
    if name in NAMED_VARIANTS:
        base, overrides = NAMED_VARIANTS[name]
        return create_model(base, **overrides)
    return create_model(name)


def measure(
    name: str,
    device: torch.device,
    batch: int,
    precision: str,
    compiled: bool,
    steps: int,
    warmup: int,
    augment: bool,
) -> dict:
    torch.manual_seed(0)
    model = _model(name).to(device)
    cfg = model.config
    optimizer = build_optimizer(model, OptimSection(name="adamw", lr=1e-3, weight_decay=0.1))
    aug_cfg = AugmentSection(
        mixup_alpha=0.5 if augment else 0.0  # crop and flip are the data sets' (per sample)
    )
    transform = DeviceAugment(aug_cfg, cfg.img_size, cfg.mean, cfg.std, cfg.num_classes)
    step_model = torch.compile(model) if compiled else model
    images = torch.rand(batch, cfg.in_chans, *cfg.img_size, device=device)
    labels = torch.randint(0, cfg.num_classes, (batch,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def step() -> None:
        x, targets = transform(images, labels)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = compute_loss(step_model(x), targets, "softmax")
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    result = {
        "model": name, "device": str(device), "batch_size": batch, "precision": precision,
        "compile": compiled, "augment": augment, "img_size": list(cfg.img_size),
        "params": sum(p.numel() for p in model.parameters()), "steps": steps,
        "seconds": round(seconds, 4), "images_per_second": round(batch * steps / seconds, 1),
    }  # fmt: skip
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=None)
    parser.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off")
    parser.add_argument("--no-augment", action="store_true", help="time the model step alone")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("train_throughput.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    models = args.models or (GPU_MODELS if gpu else ["digits-default", *CPU_MODELS])
    batches = args.batch_sizes or ([128] if gpu else [64])
    precisions = args.precisions or (["fp32", "bf16"] if gpu else ["fp32"])
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    results = []
    for name in models:
        if name not in NAMED_VARIANTS:
            model_config(name)  # unknown names fail before any timing
        for batch in batches:
            for precision in precisions:
                for compiled in compiles:
                    try:
                        r = measure(
                            name,
                            device,
                            batch,
                            precision,
                            compiled,
                            args.steps,
                            args.warmup,
                            not args.no_augment,
                        )
                    except torch.OutOfMemoryError:
                        r = {
                            "model": name,
                            "batch_size": batch,
                            "precision": precision,
                            "compile": compiled,
                            "error": "out of memory",
                        }
                        torch.cuda.empty_cache()
                    results.append(r)
                    print(json.dumps(r), flush=True)
    machine = {
        "torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "gpu": torch.cuda.get_device_name(device) if gpu else None,
    }  # fmt: skip
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
