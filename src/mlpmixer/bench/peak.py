"""The dense-matmul peak of a device, measured: the denominator of model FLOPs utilisation.

MFU = achieved model FLOP/s ÷ the FLOP/s of the best large square matmul of the same dtype on
the same device, in the same process. A vendor's datasheet peak is unreachable in practice
(clock limits, memory, the BLAS's blocking), so measuring it says how close the model gets
to what the device *actually* delivers for its main operation; the best of a few sizes and
of repeated runs is taken, which makes the MFU conservative.

On CPU the product is timed in both libraries a model's layers may use, ATen's ``torch.mm``
(MKL for fp32) and oneDNN, and the faster counts: on AMD CPUs MKL runs fp32 without AVX-512
while the fast path's oneDNN products use it, and a peak from ``torch.mm`` alone gave fp32
MFUs of 120-167% (``mlpmixer bench``, ``benchmarks/mixer_suite.py``, AMD EPYC). oneDNN is
timed only in the dtypes it runs on this CPU (`onednn.works`: no bf16 inner product without
AVX-512 or bf16 instructions); a product that fails anyway is left out, like the layers do.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from ..models.fast import onednn
from ..precision import DTYPES
from ..timing import synchronize

CPU_SIZES = (1024, 2048, 3072)
CUDA_SIZES = (4096, 8192)
# a product slower than this stops the sizes from growing: bf16 emulated on an AVX2 CPU ran
# at ~1 GFLOP/s, and the 3072 product (58 GFLOP) four times took minutes (issue 25)
MAX_PRODUCT_S = 1.0


@dataclass
class MatmulPeak:
    tflops: float  # best TFLOP/s over the sizes tried
    size: int  # n of the n×n @ n×n product that reached it
    dtype: str
    device: str
    by_size: dict[int, float]  # TFLOP/s of each size
    library: str = "aten"  # which library's product reached it: "aten" or "onednn" (CPU)

    def to_dict(self) -> dict:
        return asdict(self)


def _products(device: torch.device, dtype: torch.dtype) -> dict[str, object]:
    """The n×n products to time: ATen's, and on CPU oneDNN's where this torch has it."""

    def aten(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
        torch.mm(a, b, out=out)

    def onednn_product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
        onednn.pointwise(a, b, None, "none", "")  # a @ bᵀ: same FLOPs

    products: dict[str, object] = {"aten": aten}
    if device.type == "cpu" and onednn.works("linear", dtype):
        products["onednn"] = onednn_product
    return products


def _library_rates(
    n: int, dtype: torch.dtype, device: torch.device, min_time_s: float, products: dict
) -> dict[str, float]:
    """TFLOP/s of each library's n×n product; a oneDNN product that fails is dropped (and
    switched off for the layers too, as their own failure would)."""
    rates: dict[str, float] = {}
    for lib, product in list(products.items()):
        try:
            rates[lib] = _matmul_tflops(n, dtype, device, min_time_s, product)
        except (RuntimeError, NotImplementedError) as err:
            if lib == "aten":
                raise
            onednn.record_failure("linear", dtype, err)
            del products[lib]
    return rates


def _matmul_tflops(
    n: int, dtype: torch.dtype, device: torch.device, min_time_s: float, product: object
) -> float:
    """Best TFLOP/s of ``product(a, b, out)`` (n×n each) over repeated runs.

    The fastest run, not the median: a peak is what the device can do, and on a shared
    machine slower runs measure the neighbours.
    """
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    out = torch.empty(n, n, device=device, dtype=dtype)
    product(a, b, out)  # warm-up: kernel selection, weight packing, clocks
    synchronize(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time_s and len(times) < 200):
        t0 = time.perf_counter()
        product(a, b, out)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e12


def measure_matmul_peak(
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    sizes: tuple[int, ...] | None = None,
    min_time_s: float = 1.0,
) -> MatmulPeak:
    """Best TFLOP/s of n×n matmuls in ``dtype`` on ``device`` over ``sizes``.

    Defaults: n in (1024, 2048, 3072) on CPU, (4096, 8192) on CUDA, smallest first; each size
    runs for at least ``min_time_s`` seconds (at least 3 products) after one warm-up product,
    in each library of `_products`; ``by_size`` keeps the better library per size. Once one
    product takes longer than `MAX_PRODUCT_S`, larger sizes are not tried.
    """
    device = torch.device(device)
    torch_dtype = DTYPES[dtype]
    if sizes is None:
        sizes = CUDA_SIZES if device.type == "cuda" else CPU_SIZES
    products = _products(device, torch_dtype)
    rates: dict[tuple[int, str], float] = {}
    for n in sorted(sizes):
        rates.update(
            ((n, lib), rate)
            for lib, rate in _library_rates(n, torch_dtype, device, min_time_s, products).items()
        )
        if 2 * n**3 / max(rates.values()) / 1e12 > MAX_PRODUCT_S:
            break  # an emulated dtype (bf16 without bf16 instructions): larger n only take longer
    sizes = sorted({m for m, _ in rates})
    by_size = {n: max(r for (m, _), r in rates.items() if m == n) for n in sizes}
    best_size, library = max(rates, key=rates.__getitem__)
    return MatmulPeak(rates[best_size, library], best_size, dtype, str(device), by_size, library)
