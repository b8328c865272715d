"""Goldens for the zoo's five families, made by the official code: tests/fixtures/zoo_official/.

For each family one small official model (tiny widths and depths) is built by the official
repository's own classes, given random weights (`zoo_vs_official.randomize`: BatchNorm
statistics included, CycleMLP's fixed offsets kept), and run in eval mode on one or two
random images; its state dict, the images and the official logits go to
``<family>.safetensors`` (a few tens of KB each), with our config for the same architecture
(``config``, JSON) and the official call that built the model (``official``) in the
metadata. tests/models/test_zoo_official_goldens.py loads each state dict into OUR model with
``strict=True`` and checks our logits against the official ones, so the comparison of
benchmarks/zoo_vs_official.py is part of the test suite without the official code.

Regenerate (same set-up as zoo_vs_official.py: the four checkouts; stubs for timm 0.3,
cupy and torchvision's deform_conv2d come from there)::

    PYTHONPATH=src python benchmarks/zoo_official_goldens.py \\
        /tmp/AS-MLP /tmp/Hire-Wave-MLP /tmp/VisionPermutator /tmp/CycleMLP

The fixtures in the repository were made from the official commits AS-MLP dd1eb4f,
Hire-Wave-MLP 7ef7ddd, VisionPermutator 2cab2ce, CycleMLP 4e062a0.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from zoo_vs_official import (
    CYCLE_SMALL,
    cycle_pair,
    install_stubs,
    load_official,
    load_vip_cycle,
    randomize,
    vip_pair,
)

from mlpmixer.models import as_mlp, hire_mlp, wave_mlp

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "zoo_official"


def golden(
    official: nn.Module | Callable[[tuple[int, int]], nn.Module],
    config: Any,
    call: str,
    sizes: list[tuple[int, int]],
) -> dict:
    """Tensors and metadata of one golden: the official model's random state and its logits
    at each of ``sizes``. ``official`` is the model, or (AS-MLP, whose official model asserts
    its ``img_size``) a builder ``size -> model`` given the same state at each size."""
    build = official if not isinstance(official, nn.Module) else lambda _size: official
    state = randomize(build(sizes[0]))
    tensors = {f"state.{key}": value.contiguous() for key, value in state.items()}
    g = torch.Generator().manual_seed(11)
    for i, size in enumerate(sizes):
        model = build(size)
        model.load_state_dict(state, strict=True)
        images = torch.randn(1, 3, *size, generator=g)
        with torch.no_grad():
            tensors[f"input.{i}"], tensors[f"logits.{i}"] = images, model.eval()(images)
    meta = {"config": json.dumps(config.to_dict()), "official": call, "inputs": str(len(sizes))}
    return {"tensors": tensors, "metadata": meta}


def asmlp_golden(AS_MLP) -> dict:
    def official(size: tuple[int, int]) -> nn.Module:
        return AS_MLP(img_size=size, embed_dim=5, depths=[1, 2, 1, 1], shift_size=5,
                      mlp_ratio=2.0, num_classes=5)  # fmt: skip

    config = as_mlp.AsMlpConfig(img_size=(32, 64), embed_dim=5, depths=(1, 2, 1, 1),
                                shift_size=5, mlp_ratio=2.0, num_classes=5)  # fmt: skip
    call = ("AS_MLP(img_size=<input size>, embed_dim=5, depths=[1, 2, 1, 1], shift_size=5, "
            "mlp_ratio=2.0, num_classes=5)")  # fmt: skip
    return golden(official, config, call, [(32, 64), (32, 32)])


def wavemlp_golden(wave) -> dict:
    official = wave.WaveNet([1, 2, 1, 1], embed_dims=[8, 12, 16, 20], transitions=[True] * 4,
                            mlp_ratios=[4, 3, 2, 4], mode="depthwise", ds_use_norm=True,
                            num_classes=5, norm_layer=wave.MyNorm)  # fmt: skip
    config = wave_mlp.WaveMlpConfig(embed_dims=(8, 12, 16, 20), depths=(1, 2, 1, 1),
                                    mlp_ratios=(4, 3, 2, 4), norm="group", stem_norm=True,
                                    theta_conv="depthwise", num_classes=5)  # fmt: skip
    call = ("WaveNet([1, 2, 1, 1], embed_dims=[8, 12, 16, 20], transitions=[True] * 4, "
            "mlp_ratios=[4, 3, 2, 4], mode='depthwise', ds_use_norm=True, num_classes=5, "
            "norm_layer=MyNorm)")  # fmt: skip
    return golden(official, config, call, [(40, 56), (37, 61)])


def hiremlp_golden(hire) -> dict:
    official = hire.HireMLPNet([3, 2, 1, 1], embed_dims=[8, 12, 16, 20], mlp_ratios=[4] * 4,
                               pixel=[3, 2, 4, 2], step_stride=[2, 2, 1, 2],
                               step_dilation=[2, 5, 1, 1], num_classes=5)  # fmt: skip
    config = hire_mlp.HireMlpConfig(embed_dims=(8, 12, 16, 20), depths=(3, 2, 1, 1),
                                    region_size=(3, 2, 4, 2), step_stride=(2, 2, 1, 2),
                                    step_dilation=(2, 5, 1, 1), num_classes=5)  # fmt: skip
    call = ("HireMLPNet([3, 2, 1, 1], embed_dims=[8, 12, 16, 20], mlp_ratios=[4] * 4, "
            "pixel=[3, 2, 4, 2], step_stride=[2, 2, 1, 2], step_dilation=[2, 5, 1, 1], "
            "num_classes=5)")  # fmt: skip
    return golden(official, config, call, [(43, 61), (27, 35)])


# patch, img, layers, dims, transitions, segments, mlp ratios, qkv_bias, skip_lam
VIP_GOLDEN = (4, 32, (1, 2, 1, 1), (8, 16, 16, 24), (True, False, False), (8, 4, 4, 4), (3, 2, 3, 2), True, 1.0)  # fmt: skip


def vip_golden(official_vip) -> dict:
    row = VIP_GOLDEN
    official, ours = vip_pair(official_vip, row)
    call = f"VisionPermutator built by zoo_vs_official.vip_pair from {row}"
    return golden(official, ours.config, call, [(row[1], row[1])])


def cyclemlp_golden(official_cycle) -> dict:
    row = CYCLE_SMALL[1]  # qkv_bias and skip_lam != 1 exercised too
    official, ours = cycle_pair(official_cycle, row, (37, 61))
    call = f"CycleNet built by zoo_vs_official.cycle_pair from CYCLE_SMALL[1] = {row}"
    return golden(official, ours.config, call, [(37, 61), (5, 9)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, repo in [("asmlp", "svip-lab/AS-MLP"), ("hirewave", "ggjy/Hire-Wave-MLP.pytorch"),
                       ("vip", "houqb/VisionPermutator"), ("cyclemlp", "ShoufaChen/CycleMLP")]:  # fmt: skip
        parser.add_argument(name, type=Path, help=f"a checkout of {repo}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    install_stubs()
    AS_MLP, wave, hire = load_official(args.asmlp, args.hirewave)
    official_vip, official_cycle = load_vip_cycle(args.vip, args.cyclemlp)
    goldens = {
        "asmlp": asmlp_golden(AS_MLP),
        "wavemlp": wavemlp_golden(wave),
        "hiremlp": hiremlp_golden(hire),
        "vip": vip_golden(official_vip),
        "cyclemlp": cyclemlp_golden(official_cycle),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    for family, made in goldens.items():
        path = OUT / f"{family}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(made["tensors"], tmp, metadata=made["metadata"])
        tmp.replace(path)  # atomic: a half-written golden never replaces a good one
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
