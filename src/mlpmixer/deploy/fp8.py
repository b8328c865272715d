"""fp8 on GPUs: torchao's float8 inference on CUDA GPUs with fp8 tensor cores (compute
capability >= 8.9: Ada, Hopper; an H100 is 9.0), and, where neither fp8 nor int8 can help, the
one-line refusal saying what to use instead.

What fp8 does here: every ``nn.Linear`` outside the stem and the head (`plain.default_keep`)
gets float8 (e4m3) weights with one scale per output row, and its input is cast to float8 at
run time with one scale per token row (torchao ``Float8DynamicActivationFloat8WeightConfig``
with ``PerRow`` granularity); the products run on the fp8 tensor cores (``torch._scaled_mm``)
and everything else (norms, GELUs, residual adds, the stem, the head) in bf16, the baseline
it is measured against. A Linear whose input or output size is not a multiple of 16 cannot go
through ``_scaled_mm`` and stays bf16 (torchao skips it silently; here it is named): in
Mixer-B/16 these are the token-mixing Linears (196 patches).

What is saved: nothing. An fp8 model is made from the float checkpoint when it is loaded
(`to_fp8`: a per-row max and a cast per weight, no calibration; Mixer-B/16 took 2.4 s of CPU
time on a CPU, half of it building the bf16 copy; not yet timed on a GPU), not written in the
int8 folder format, because (1) torchao's fp8 weight layout changes between its versions (its
version 1 is deprecated already) where the float checkpoint does not, (2) an fp8 file would
load only on an fp8 GPU while the float checkpoint loads anywhere, and (3) the float checkpoint
is needed anyway for what fp8 cannot do (features, fine-tuning, export, CPU int8).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .plain import default_keep, plain_copy
from .weights import inside, is_quantized

MIN_CAPABILITY = (8, 9)  # fp8 tensor cores: Ada (8.9) and Hopper (9.0) onwards
ALIGN = 16  # torch._scaled_mm needs both sizes of the weight to be multiples of 16
ON_CPU = (
    "on a CPU use int8 (mlpmixer quantize --method static where the CPU has VNNI/AMX, or "
    "--method auto) or keep fp32 (the fast path)"
)


def fp8_refusal(device: str | torch.device = "cuda") -> str | None:
    """None where fp8 runs on ``device``; else one line saying why not and what to use.

    fp8 products need fp8 tensor cores: a CUDA GPU of compute capability >= 8.9. On a CPU (or
    a torch that sees no GPU) the answer is int8 or fp32; on an older GPU (an A100 is 8.0),
    bf16, which it runs natively.
    """
    device = parse_device(device)
    need = f"fp8 needs a CUDA GPU of compute capability >= {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}"
    if device.type != "cuda":
        return f"{need} (Ada, Hopper: an H100 is 9.0), not {device.type}; {ON_CPU}"
    if not torch.cuda.is_available():
        return f"{need} (Ada, Hopper: an H100 is 9.0), and this torch sees none; {ON_CPU}"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"{need}, and there is no {device} (this machine has {torch.cuda.device_count()})"
    capability = tuple(torch.cuda.get_device_capability(device))
    if capability < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        return (
            f"{need} and this {name} is {capability[0]}.{capability[1]} (no fp8 tensor cores); "
            "use bf16 there (--precision bf16 of eval, predict and bench, with the float "
            "checkpoint)"
        )
    return None


def parse_device(name: str | torch.device) -> torch.device:
    """``name`` as a `torch.device`; a one-line `ConfigError` for a name torch does not know."""
    try:
        return torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"unknown device {str(name)!r}; use cpu, cuda or cuda:N") from None


def check_fp8_device(device: str | torch.device = "cuda") -> torch.device:
    """``device`` as a `torch.device` where fp8 runs; a one-line `ConfigError` otherwise."""
    reason = fp8_refusal(device)
    if reason is not None:
        raise ConfigError(reason)
    return parse_device(device)


def int8_on_gpu_refusal(method: str) -> str:
    """The line `mlpmixer quantize` says for an int8 method asked to run on a GPU."""
    return (
        f"{method} int8 on a GPU is not served here: the int8 models of quantize run on the "
        "CPU (torchao's and oneDNN's CPU kernels); on a GPU use --method fp8 (compute "
        "capability >= 8.9) or bf16 (--precision bf16 of eval, predict and bench); for a CPU "
        "deployment drop --device"
    )


def fp8_sized(linear: nn.Linear) -> bool:
    """Whether ``linear``'s weight (out, in) fits ``_scaled_mm``: both multiples of 16."""
    out_features, in_features = linear.weight.shape
    return out_features % ALIGN == 0 and in_features % ALIGN == 0


def fp8_config() -> Any:
    """torchao's fp8 inference config: e4m3 weights per output row, e4m3 activations per
    token row. ``set_inductor_config=False``: torchao would otherwise change Inductor's global
    settings for the whole process (other models compiled later included)."""
    quantization = _torchao_quantization()
    return quantization.Float8DynamicActivationFloat8WeightConfig(
        granularity=quantization.PerRow(), set_inductor_config=False
    )


def bf16_copy(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model``'s weights in its plain layers, in bf16 on ``device``, in eval mode: the
    baseline fp8 is measured against, and what `to_fp8` converts."""
    return plain_copy(model).to(device=device, dtype=torch.bfloat16).eval()


@dataclass(frozen=True)
class Fp8Model:
    """``model``: the family model in bf16 on the GPU, its ``fp8_layers`` Linears with fp8
    weights; ``kept_bf16``: the modules left in bf16 (the stem, the head, those asked for,
    and Linears whose sizes `_scaled_mm` cannot take). Forward: (B, C, H, W) bf16 -> logits
    (B, num_classes) bf16."""

    model: nn.Module
    fp8_layers: tuple[str, ...]
    kept_bf16: tuple[str, ...]
    unaligned: tuple[str, ...] = ()  # the Linears of kept_bf16 that _scaled_mm cannot take

    def describe(self) -> str:
        """One line: how many Linears are fp8, what stays bf16."""
        chosen = [n for n in self.kept_bf16 if n not in self.unaligned]
        if self.unaligned:
            shown = ", ".join(self.unaligned[:2]) + (", ..." if len(self.unaligned) > 2 else "")
            chosen.append(f"{len(self.unaligned)} Linears not 16-aligned ({shown})")
        return (
            f"fp8: {len(self.fp8_layers)} Linears fp8 (e4m3, per-row scales); kept in bf16: "
            f"{', '.join(chosen)} (and every norm, activation and residual add)"
        )


def to_fp8(
    model: nn.Module, device: str | torch.device = "cuda", keep: Iterable[str] | None = None
) -> Fp8Model:
    """``model`` (any family, float weights, left as it is) in fp8 on ``device``.

    ``keep``: module names left in bf16 (default `plain.default_keep`: the stem and the
    head). Raises `ConfigError` where ``device`` has no fp8 (`fp8_refusal`) or torchao is
    missing.
    """
    device = check_fp8_device(device)
    kept = default_keep(model) if keep is None else tuple(keep)
    config = fp8_config()
    converted = bf16_copy(model, device)
    chosen, odd = [], []
    for name, module in converted.named_modules():
        if isinstance(module, nn.Linear) and not inside(name, kept):
            (chosen if fp8_sized(module) else odd).append(name)
    wanted = set(chosen)
    _torchao_quantization().quantize_(
        converted, config, filter_fn=lambda _module, name: name in wanted
    )
    done = [n for n in chosen if is_quantized(converted.get_submodule(n).weight)]
    left = [n for n in chosen if n not in done]  # torchao declined them: say so, keep bf16
    return Fp8Model(converted, tuple(done), (*kept, *odd, *left), tuple(odd))


@dataclass(frozen=True)
class Fp8Check:
    """fp8 against bf16 on the same images: ``top1_agreement`` (fraction with the same
    top-1 class), ``max_abs_dlogit`` (max |logit_fp8 - logit_bf16|) beside the largest
    |logit_bf16| (``max_abs_logit``, for scale), and the median step times of ``batch``
    images (``bf16_ms``, ``fp8_ms``; ``speedup`` = bf16_ms / fp8_ms, > 1: fp8 faster)."""

    images: int
    top1_agreement: float
    max_abs_dlogit: float
    max_abs_logit: float
    batch: int
    compiled: bool
    bf16_ms: float
    fp8_ms: float
    speedup: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    reference: nn.Module,
    candidate: nn.Module,
    images: torch.Tensor,
    batch: int = 256,
    compiled: bool = False,
    repeats: int = 10,
    min_time_s: float = 1.0,
) -> Fp8Check:
    """``candidate`` (fp8) against ``reference`` (bf16): agreement on ``images`` (N, C, H, W),
    moved to the reference's device and dtype, and the median step times of the first
    ``batch`` of them, timed interleaved (`mlpmixer.timing.time_calls`), eagerly or under
    ``torch.compile``."""
    from ..timing import time_calls
    from .accuracy import logits

    weight = next(reference.parameters())
    images = images.to(device=weight.device, dtype=weight.dtype)
    ref, out = logits(reference, images), logits(candidate, images)
    timed = images[:batch]
    models = {"bf16": reference, "fp8": candidate}
    if compiled:
        models = {k: torch.compile(m, dynamic=False) for k, m in models.items()}

    def step(model: Any) -> Any:
        def run() -> Any:
            with torch.no_grad():
                return model(timed)

        return run

    warmup = 3 + (2 if compiled else 0)  # compile, then autotuning
    times = time_calls(
        {k: step(m) for k, m in models.items()}, images.device, warmup, repeats, min_time_s
    )
    bf16_ms, fp8_ms = (1e3 * statistics.median(times[k]) for k in ("bf16", "fp8"))
    return Fp8Check(
        images=int(images.shape[0]),
        top1_agreement=(ref.argmax(1) == out.argmax(1)).float().mean().item(),
        max_abs_dlogit=(out - ref).abs().max().item(),
        max_abs_logit=ref.abs().max().item(),
        batch=int(timed.shape[0]),
        compiled=compiled,
        bf16_ms=bf16_ms,
        fp8_ms=fp8_ms,
        speedup=bf16_ms / fp8_ms,
    )


def stand_in(reference: nn.Module) -> nn.Module:
    """A bf16 copy standing in for the fp8 model where there is no fp8 (a dry run on the CPU):
    the measuring code runs end to end; its numbers mean nothing."""
    return copy.deepcopy(reference)


def _torchao_quantization() -> Any:
    from .extra import INSTALL_HINT, torchao_module

    try:
        return torchao_module("torchao.quantization")
    except ConfigError as err:
        raise ConfigError(f"fp8 needs torchao: {INSTALL_HINT}") from err
