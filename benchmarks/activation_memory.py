"""Training memory per image of the paper's Mixers, with and without activation checkpointing.

Counts the bytes autograd saves for backward during one forward pass (what grows with the
batch; `mlpmixer.timing.SavedActivations`), under bf16 autocast or in fp32, and
estimates the largest batch that fits a GPU of the given memory next to the fp32 weights,
gradients and AdamW state (16 bytes per parameter). With checkpointing, each block's input is
kept and one block's activations are rebuilt at a time in backward; both are counted. The counts do not depend on the device,
so this runs on a CPU in seconds per model:

    python benchmarks/activation_memory.py                       # all paper models, bf16
    python benchmarks/activation_memory.py --models mixer_l16_224,mixer_h14_224 --gpu-gib 80

Backward's temporaries (one block's gradients at a time) and the allocator's slack come on
top; measure a real step with ``mlpmixer bench --device cuda --mode train`` to confirm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import torch

from mlpmixer import create_model, list_models
from mlpmixer.timing import SavedActivations


def saved_bytes(model: torch.nn.Module, batch: int, dtype: str) -> int:
    images = torch.randn(batch, model.config.in_chans, *model.config.img_size)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    )
    with autocast, SavedActivations(model.parameters()) as saved:
        model(images)
    return saved.bytes


def saved_bytes_per_image(name: str, checkpointing: bool, dtype: str) -> int:
    """Saved bytes of batch 2 minus batch 1: per image, without autocast's weight copies."""
    model = create_model(name).train()
    model.set_grad_checkpointing(checkpointing)
    return saved_bytes(model, 2, dtype) - saved_bytes(model, 1, dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(list_models("mixer_*_224")))
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--gpu-gib", type=float, default=80.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        # a line per model on stderr: the big ones take minutes, and stdout stays parseable
        print(f"... measuring {name}", file=sys.stderr, flush=True)
        params = create_model(name).num_params()
        static = 16 * params  # fp32 weights + gradients + AdamW's two moments
        row = {"model": name, "params_m": params / 1e6, "static_gib": static / 2**30}
        plain = saved_bytes_per_image(name, False, args.dtype)
        # checkpointing keeps each block's input, and recomputes one block at a time in backward
        blocks = create_model(name).config.num_blocks
        checkpointed = saved_bytes_per_image(name, True, args.dtype) + plain / blocks
        for key, per_image in (("plain", plain), ("checkpointed", checkpointed)):
            row[f"{key}_mib_per_image"] = per_image / 2**20
            row[f"{key}_max_batch"] = int((args.gpu_gib * 2**30 - static) // per_image)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"| model | params M | weights+grads+AdamW GiB | saved act. MiB/img ({args.dtype}) "
          f"| max batch in {args.gpu_gib:g} GiB | checkpointed MiB/img | max batch |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['params_m']:.0f} | {r['static_gib']:.1f} "
            f"| {r['plain_mib_per_image']:.1f} | {r['plain_max_batch']} "
            f"| {r['checkpointed_mib_per_image']:.1f} | {r['checkpointed_max_batch']} |"
        )


if __name__ == "__main__":
    main()
