"""PT2E static int8: torch.export -> ``prepare_pt2e`` with ``X86InductorQuantizer`` ->
calibration forwards -> ``convert_pt2e``.

The result is a ``torch.fx.GraphModule``: int8 weights (per output channel) dequantized in
the graph, and a quantize/dequantize pair with one scale and zero point per activation
tensor, fixed by calibration (uint8, asymmetric: the quantizer's default for activations).
Run as it is, it is float products on int8-rounded values (an accuracy check); under
``torch.compile`` with Inductor's freezing the pairs fuse into oneDNN's int8 kernels.

The batch dimension is exported dynamic, so the module takes any batch size.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..cpu_kind import CpuKind, effective_cpu, int8_units
from .extra import torchao_module

QUANT_OPS = ("quantize_per_tensor", "dequantize_per_tensor")  # activations: scalars in the graph
ACTIVATION_BITS = (7, 8)


def default_activation_bits(kind: CpuKind | None = None) -> int:
    """8 where the CPU (as oneDNN may use it) has VNNI/AMX int8 units, else 7.

    Without those units oneDNN's uint8 x int8 products add pairs of products in 16 bits
    (``vpmaddubsw``): full-range operands (2 * 255 * 127 > 32767) saturate, which measured a
    1.13 logit error on a GEMM under the AVX2 caps against 0.068 with VNNI, and 97.7% top-1
    agreement on the mnist5k model (benchmarks/int8_avx2.py). 7-bit activations (0..127)
    cannot overflow (2 * 127 * 127 < 32767) and cost half the activation resolution."""
    return 8 if int8_units(kind or effective_cpu()) else 7


def export_plain(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``model`` exported by torch.export with a dynamic batch, as an fx module."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    example = example[:2] if example.shape[0] >= 2 else torch.cat([example, example])
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)
    return program.module()


def quantizer(keep: Iterable[str], reduce_range: bool = False) -> object:
    """X86InductorQuantizer, default (static, per-channel weights) config, ``keep`` in float.

    ``reduce_range``: 7-bit activations (0..127). Without VNNI, oneDNN's uint8 x int8 products
    add pairs in 16 bits (``vpmaddubsw``), which saturate for full-range operands
    (2 * 255 * 127 > 32767): benchmarks/int8_avx2.py measures the error that makes."""
    x86 = torchao_module("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer")
    config = x86.get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
    q = x86.X86InductorQuantizer().set_global(config)
    for name in keep:
        q.set_module_name_qconfig(name, None)
    return q


def prepare(
    model: nn.Module, example: torch.Tensor, keep: Iterable[str], reduce_range: bool = False
) -> nn.Module:
    """The exported ``model`` with observers in, ready for calibration forwards."""
    pt2e = torchao_module("torchao.quantization.pt2e.quantize_pt2e")
    return pt2e.prepare_pt2e(export_plain(model, example), quantizer(keep, reduce_range))


def convert(prepared: nn.Module) -> nn.Module:
    """The calibrated module with its observers turned into int8 weights and q/dq pairs."""
    pt2e = torchao_module("torchao.quantization.pt2e.quantize_pt2e")
    converted = pt2e.convert_pt2e(prepared)
    drop_unused_tensors(converted)
    return converted


def drop_unused_tensors(module: torch.fx.GraphModule) -> None:
    """Delete the parameters and buffers no node reads: convert leaves each quantized layer's
    float weight beside its int8 copy, which would make the file larger than the float one."""
    used = {node.target for node in module.graph.nodes if node.op == "get_attr"}
    names = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    for name in names:
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(module.get_submodule(owner) if owner else module, leaf)


@torch.no_grad()
def quantize_static(
    model: nn.Module,
    calibration: torch.Tensor,
    keep: Iterable[str],
    batch_size: int = 64,
    reduce_range: bool = False,
) -> nn.Module:
    """``model`` quantized with activation ranges observed on ``calibration`` (N, C, H, W),
    normalised as the model expects (``reduce_range``: see `quantizer`)."""
    prepared = prepare(model, calibration, keep, reduce_range)
    for start in range(0, calibration.shape[0], batch_size):
        prepared(calibration[start : start + batch_size])
    return convert(prepared)


def activation_params(module: nn.Module) -> dict[str, list[float | int]]:
    """Each activation quantize/dequantize node's (scale, zero point), by node name."""
    return {
        node.name: [float(node.args[1]), int(node.args[2])]
        for node in module.graph.nodes
        if _is_quant_node(node)
    }


def set_activation_params(module: nn.Module, params: dict[str, list[float | int]]) -> None:
    """Write saved (scale, zero point) pairs into ``module``'s nodes (the names must match)."""
    for node in module.graph.nodes:
        if _is_quant_node(node):
            scale, zero_point = params[node.name]
            node.args = (node.args[0], float(scale), int(zero_point), *node.args[3:])
    module.recompile()


def _is_quant_node(node: torch.fx.Node) -> bool:
    target = getattr(node.target, "__name__", str(node.target))
    return node.op == "call_function" and target.split(".")[0] in QUANT_OPS


def quantized_layers(module: nn.Module) -> list[str]:
    """Which Linears/convolutions of the source model got int8 weights (from the graph's
    module stack)."""
    names = []
    for node in module.graph.nodes:
        target = str(node.target)
        if node.op == "call_function" and ("linear" in target or "conv" in target):
            stack = node.meta.get("nn_module_stack") or {}
            path = list(stack.values())[-1][0] if stack else node.name
            weight = node.args[1]
            if getattr(weight, "op", "") == "call_function" and "dequantize" in str(weight.target):
                names.append(path)
    return names
