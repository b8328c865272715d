"""Throughput, MFU, latency and memory of a Mixer, optionally side by side with a plain one.

``benchmark(model_or_name, BenchOptions(...))`` returns a JSON-ready dict; ``mlpmixer bench``
prints it. What is measured, per implementation (``mlpmixer``: this library's model, any
family; ``plain``: the family spec's plain-layer twin with the same weights (Mixers only);
``timm``: timm's model of the same family when timm is importable):

- inference: one forward pass of a batch (``torch.no_grad``); weights and inputs cast to the
  dtype (``--infer-autocast`` keeps fp32 weights under ``torch.autocast`` instead);
- training: forward, cross-entropy, backward and an AdamW step, fp32 weights, autocast for
  bf16/fp16 (plus a gradient scaler for fp16) — the usual mixed-precision step;
- images/s (batch ÷ median step time), per CPU thread or per GPU; TFLOP/s from the
  analytic FLOPs (`mlpmixer.models.flops_per_image`, a training step counted as 3× the
  forward pass); MFU against a dense matmul of the same dtype measured on the same device
  in the same run (`mlpmixer.bench.peak`); batch-1 latency percentiles; peak memory
  (CUDA allocator peak, CPU resident-set peak) and, for training, the activation memory
  autograd saves per image.

Implementations are timed in interleaved rounds so that load changes on a shared machine
hit them alike; the JSON keeps the spread of the step times and the load average.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import platform
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.formats.int8 import is_int8
from ..cpu_kind import this_cpu
from ..download import is_hub_id
from ..errors import ConfigError, RunError
from ..models import MlpFamilyModel, flops_per_image, param_count
from ..models.config import GELU_VARIANTS
from ..models.fast import pieces
from ..models.params import weight_decay_groups
from ..models.spec import family_spec
from ..precision import DTYPES, autocast, warn_if_emulated
from ..progress import PROGRESS
from ..timing import PeakMemory, SavedActivations, summarize_ms, synchronize, time_calls
from .peak import measure_matmul_peak

MODES = ("infer", "train", "both")
IMPLEMENTATIONS = ("mlpmixer", "plain", "timm")


@dataclass
class BenchOptions:
    """What to run. Defaults: batch 32, fp32, CPU, inference and training, no compile."""

    batch_size: int = 32
    dtype: str = "fp32"  # fp32 | bf16 | fp16
    device: str = "cpu"  # cpu | cuda | cuda:N
    mode: str = "both"  # infer | train | both
    compile: bool = False
    compile_mode: str | None = None  # torch.compile mode, e.g. "max-autotune", "reduce-overhead"
    freeze: bool = True  # compiled inference: inductor freezing (weights folded and prepacked)
    infer_autocast: bool = False  # inference under autocast with fp32 weights, not cast weights
    compare: bool = False  # also run the plain implementation (and timm, if importable)
    grad_checkpointing: bool = False
    latency: bool = True  # batch-1 latency percentiles (inference)
    threads: int | None = None  # CPU threads (torch.set_num_threads); None: torch's default
    warmup: int = 2
    repeats: int = 5
    min_time_s: float = 3.0
    latency_repeats: int = 30
    peak: bool = True  # measure the matmul peak (needed for MFU)
    peak_sizes: tuple[int, ...] | None = None  # n of the n×n products; None: per-device default
    gelu: str | None = None  # override the model's GELU ("tanh" | "none"): changes the numbers
    seed: int = 0

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("batch_size", "repeats", "latency_repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if self.warmup < 0 or self.min_time_s < 0:
            raise ConfigError("warmup and min_time_s must be >= 0")
        if self.gelu not in (None, *GELU_VARIANTS):
            raise ConfigError(f"gelu must be one of {GELU_VARIANTS}, got {self.gelu!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads!r}")
        device = _parse_device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r} requested but CUDA is not available")
        if self.compile_mode == "reduce-overhead" and device.type != "cuda":
            raise ConfigError("compile_mode 'reduce-overhead' (CUDA graphs) needs a CUDA device")


def _parse_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {name!r}") from err
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {name!r}")
    return device


def resolve_model(spec: str | MlpFamilyModel, **overrides: Any) -> tuple[MlpFamilyModel, str]:
    """A registered model name (fresh weights) or any checkpoint `load_model` reads.

    ``overrides`` change config fields (e.g. ``gelu``), keeping the weights.
    """
    if isinstance(spec, MlpFamilyModel):
        if not overrides:
            return spec, "model"
        return MlpFamilyModel.from_state_dict(
            spec.state_dict(), spec.config.replace(**overrides)
        ), "model"
    from ..models import create_model, model_config

    try:
        model_config(spec)
    except ConfigError as name_error:
        if not (os.path.exists(spec) or is_hub_id(spec)):
            raise ConfigError(
                f"{spec!r} is neither a registered model (see `mlpmixer models`) nor a checkpoint"
            ) from name_error
    else:
        return create_model(spec, **overrides), spec
    from ..checkpoints import load_model

    return load_model(spec, **overrides), spec


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the numbers came from: CPU/GPU model, threads, library versions, load average."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": this_cpu().model,
        "cpu_vendor": this_cpu().vendor,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


# ---------------------------------------------------------------- implementations


def _timm_copy(model: MlpFamilyModel) -> tuple[nn.Module | None, str]:
    """timm's model with the same weights, or None and the reason it is not available."""
    try:
        import timm  # type: ignore[import-not-found]
    except ImportError:
        return None, "timm is not installed: timm comparison skipped"
    from ..checkpoints.timm_format import state_to_timm, timm_architecture

    cfg = model.config
    if family_spec(cfg.family).timm is None:
        return None, f"timm has no {cfg.family} models: timm comparison skipped"
    try:
        net = timm.create_model(
            timm_architecture(cfg),
            pretrained=False,
            num_classes=cfg.num_classes,
            img_size=cfg.img_size,
            act_layer=lambda *a, **k: nn.GELU(approximate=cfg.gelu),
        )
        net.load_state_dict(state_to_timm(model.state_dict(), cfg.family))
    except Exception as err:  # timm's API moves; a failed comparison must not fail the run
        return None, f"timm comparison skipped: {type(err).__name__}: {err}"
    return net, "timm " + timm.__version__


def implementations(model: MlpFamilyModel, compare: bool) -> tuple[dict[str, nn.Module], list[str]]:
    """Name -> module: the model itself, and with ``compare`` its plain (Mixer only) and timm
    twins."""
    impls: dict[str, nn.Module] = {"mlpmixer": model}
    notes: list[str] = []
    if compare:
        plain = family_spec(model.config.family).plain
        if plain is not None:
            impls["plain"] = plain(model)
        else:  # the plain reference is written for the paper's block only
            notes.append(f"no plain {model.config.family} reference: plain comparison skipped")
        timm_model, note = _timm_copy(model)
        notes.append(note)
        if timm_model is not None:
            impls["timm"] = timm_model
    return impls, notes


# ---------------------------------------------------------------- steps


def _compiled(module: nn.Module, options: BenchOptions) -> nn.Module:
    if not options.compile:
        return module
    return torch.compile(module, mode=options.compile_mode, dynamic=False)  # type: ignore[return-value]


@contextlib.contextmanager
def _compile_context(options: BenchOptions, device: torch.device, inference: bool) -> Iterator:
    """Inductor freezing for compiled CPU/GPU inference: weights become constants, prepacked."""
    if options.compile and inference and options.freeze:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            yield
    else:
        yield


def _images(cfg: Any, batch: int, device: torch.device, dtype: torch.dtype, seed: int):
    g = torch.Generator(device="cpu").manual_seed(seed)
    images = torch.randn(batch, cfg.in_chans, *cfg.img_size, generator=g)
    return images.to(device=device, dtype=dtype)


def inference_step(
    module: nn.Module, cfg: Any, options: BenchOptions, batch: int
) -> Callable[[], Any]:
    """A closure running one forward pass of ``batch`` random images, no autograd."""
    device = _parse_device(options.device)
    cast = options.dtype != "fp32" and not options.infer_autocast
    dtype = DTYPES[options.dtype] if cast else torch.float32
    module = module.to(device=device, dtype=dtype).eval()
    forward = _compiled(module, options)
    images = _images(cfg, batch, device, dtype, options.seed)
    precision = autocast(device.type, options.dtype) if options.infer_autocast else None

    def step() -> Any:
        with torch.no_grad(), precision or contextlib.nullcontext():
            return forward(images)

    return step


def _optimizer(module: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(weight_decay_groups(module, 0.05), lr=1e-4)


def training_step(
    module: nn.Module, cfg: Any, options: BenchOptions, saved: list[SavedActivations] | None = None
) -> Callable[[], Any]:
    """A closure running forward, loss, backward and an AdamW step on random data.

    With ``saved`` (a list), each call appends the `SavedActivations` of its forward pass.
    """
    device = _parse_device(options.device)
    module = module.to(device=device, dtype=torch.float32).train()
    if options.grad_checkpointing and hasattr(module, "set_grad_checkpointing"):
        module.set_grad_checkpointing(True)
    forward = _compiled(module, options)
    optimizer = _optimizer(module)
    scaler = torch.amp.GradScaler(device.type) if options.dtype == "fp16" else None
    images = _images(cfg, options.batch_size, device, torch.float32, options.seed)
    g = torch.Generator(device="cpu").manual_seed(options.seed + 1)
    labels = torch.randint(0, max(cfg.num_classes, 1), (options.batch_size,), generator=g)
    labels = labels.to(device)
    params = list(module.parameters())

    def step() -> Any:
        record = SavedActivations(params) if saved is not None else contextlib.nullcontext()
        with autocast(device.type, options.dtype), record:
            out = forward(images).float()
            loss = F.cross_entropy(out, labels) if cfg.num_classes else out.square().mean()
        if saved is not None:
            saved.append(record)  # type: ignore[arg-type]
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


# ---------------------------------------------------------------- measurement


def _row(
    impl: str,
    mode: str,
    times_s: list[float],
    batch: int,
    flops_per_step: float,
    peak_tflops: float | None,
    device: torch.device,
) -> dict[str, Any]:
    step_ms = summarize_ms(times_s)
    images_per_s = batch / (step_ms["median"] / 1e3)
    tflops = flops_per_step / (step_ms["median"] / 1e3) / 1e12
    best_tflops = flops_per_step / (step_ms["min"] / 1e3) / 1e12
    per_unit = "images_per_s_per_core" if device.type == "cpu" else "images_per_s_per_gpu"
    units = torch.get_num_threads() if device.type == "cpu" else 1  # one thread per core
    return {
        "impl": impl,
        "mode": mode,
        "batch_size": batch,
        "step_ms": step_ms,
        "images_per_s": images_per_s,
        per_unit: images_per_s / units,
        "tflops": tflops,
        "mfu": tflops / peak_tflops if peak_tflops else None,
        # the fastest step: what the code can do when a shared machine leaves it alone
        "images_per_s_best": batch / (step_ms["min"] / 1e3),
        "mfu_best": best_tflops / peak_tflops if peak_tflops else None,
    }


def _measure_memory(step: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    with PeakMemory(device) as memory:
        step()
    return {"peak_memory_mb": memory.peak / 2**20, "memory_source": memory.source}


log = logging.getLogger(__name__)  # progress: a line per phase (the CLI shows it on stderr)


def _run_mode(
    mode: str,
    impls: dict[str, nn.Module],
    cfg: Any,
    options: BenchOptions,
    peak_tflops: float | None,
) -> list[dict[str, Any]]:
    device = _parse_device(options.device)
    inference = mode == "infer"
    forward_flops = flops_per_image(cfg) * options.batch_size
    flops = forward_flops if inference else 3 * forward_flops
    saved: dict[str, list[SavedActivations]] = {name: [] for name in impls}
    log.info(
        "timing %s (%s) at batch %d: at least %d steps and %.0f s each",
        mode, ", ".join(impls), options.batch_size, options.repeats, options.min_time_s,
        extra=PROGRESS,
    )  # fmt: skip
    with _compile_context(options, device, inference):
        if inference:
            steps = {
                n: inference_step(m, cfg, options, options.batch_size) for n, m in impls.items()
            }
        else:
            # saved-tensor hooks and compiled graphs do not mix: no activation count there
            steps = {
                n: training_step(m, cfg, options, None if options.compile else saved[n])
                for n, m in impls.items()
            }
        cpu: dict[str, list[float]] = {}
        times = time_calls(
            steps, device, _warmup(options), options.repeats, options.min_time_s, cpu_times=cpu
        )
        rows = []
        for name, step in steps.items():
            row = _row(name, mode, times[name], options.batch_size, flops, peak_tflops, device)
            if device.type == "cpu":
                row["cpu_ms"] = summarize_ms(cpu[name])
                row["images_per_cpu_s"] = options.batch_size / (row["cpu_ms"]["median"] / 1e3)
            row.update(_measure_memory(step, device))
            if saved[name]:
                row["saved_activations_mb_per_image"] = (
                    saved[name][-1].bytes / 2**20 / options.batch_size
                )
            row["peak_memory_mb_per_image"] = row["peak_memory_mb"] / options.batch_size
            rows.append(row)
        if inference and options.latency:
            _add_latency(rows, impls, cfg, options, device)
    return rows


def _add_latency(
    rows: list[dict[str, Any]],
    impls: dict[str, nn.Module],
    cfg: Any,
    options: BenchOptions,
    device: torch.device,
) -> None:
    """Batch-1 latency percentiles (ms) of each implementation, interleaved like the rest."""
    steps = {name: inference_step(m, cfg, options, 1) for name, m in impls.items()}
    log.info("timing batch-1 latency", extra=PROGRESS)
    times = time_calls(
        steps, device, warmup=max(_warmup(options), 3), repeats=options.latency_repeats,
        min_time_s=min(options.min_time_s, 1.0),
    )  # fmt: skip
    for row in rows:
        summary = summarize_ms(times[row["impl"]])
        row["latency_ms_batch1"] = {k: summary[k] for k in ("p50", "p90", "p99", "min", "n")}


def _warmup(options: BenchOptions) -> int:
    """Compiled models get two more warm-up steps: compilation, then CUDA-graph recording."""
    return options.warmup + 2 if options.compile else options.warmup


def _peak(device: torch.device, options: BenchOptions, dtype: str | None = None) -> Any:
    """The matmul peak in ``dtype`` (default: the options'), timed for up to 1 s per size
    (less when the options ask for less)."""
    return measure_matmul_peak(
        device, dtype or options.dtype, options.peak_sizes, min_time_s=min(1.0, options.min_time_s)
    )


def _hardware_peak(device: torch.device, options: BenchOptions, emulated: bool) -> Any:
    """The options' dtype peak; where that dtype is emulated (no native instructions), the
    fp32 peak if it is higher. MFU is the share of what the hardware can do: an emulated
    product's slow rate as the denominator made bf16 under the AVX2 caps read 188% / 766%."""
    peak = _peak(device, options)
    if emulated and options.dtype != "fp32":
        log.info("measuring the fp32 matmul peak (%s is emulated)", options.dtype, extra=PROGRESS)
        fp32 = _peak(device, options, "fp32")
        if fp32.tflops > peak.tflops:
            return fp32
    return peak


def _rescale_mfu(rows: list[dict[str, Any]], peak_tflops: float) -> None:
    for row in rows:
        row["mfu"] = row["tflops"] / peak_tflops
        row["mfu_best"] = (
            row["tflops"] * row["images_per_s_best"] / row["images_per_s"] / peak_tflops
        )


def _load_notes(machine: dict[str, Any], device: torch.device) -> list[str]:
    """Say so when other processes were using the CPU cores during a CPU benchmark."""
    load = machine.get("load_average_1m", 0.0)  # at the start: not yet this run's threads
    cores = machine.get("logical_cpus") or 1
    if device.type != "cpu" or load < 1.0:
        return []
    return [
        f"the machine was busy before the run (1-min load average {load:.1f} on {cores} "
        "logical CPUs): timings may include waiting for other processes; compare ratios from "
        "one run, repeat, and consider --threads 1 or OMP_WAIT_POLICY=PASSIVE"
    ]


def _ratios(rows: list[dict[str, Any]], key: str = "images_per_s") -> dict[str, dict[str, float]]:
    """``key`` (images/s) of mlpmixer ÷ the same of each other implementation, per mode."""
    ratios: dict[str, dict[str, float]] = {}
    for mode in ("infer", "train"):
        ours = [r for r in rows if r["mode"] == mode and r["impl"] == "mlpmixer"]
        for other in (r for r in rows if r["mode"] == mode and r["impl"] != "mlpmixer"):
            if key in other:
                speedup = ours[0][key] / other[key]
                ratios.setdefault(mode, {})[f"mlpmixer_vs_{other['impl']}"] = speedup
    return ratios


def benchmark(model: str | MlpFamilyModel, options: BenchOptions | None = None) -> dict[str, Any]:
    """Run the benchmark described by ``options`` on ``model`` (name, checkpoint or module)."""
    options = options or BenchOptions()
    options.validate()
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    device = _parse_device(options.device)
    emulated = warn_if_emulated(device.type, options.dtype)  # one line, before the long wait
    log.info("building %s", model if isinstance(model, str) else "the model", extra=PROGRESS)
    net, label = resolve_model(model, **({"gelu": options.gelu} if options.gelu else {}))
    options, int8_note = _int8_options(net, options)
    torch.manual_seed(options.seed)
    result = _header(label, net.config, options, device)
    if options.peak:
        log.info("measuring the %s matmul peak", options.dtype, extra=PROGRESS)
    peak = _hardware_peak(device, options, emulated is not None) if options.peak else None
    result["matmul_peak"] = peak.to_dict() if peak else None
    impls, result["notes"] = implementations(net, options.compare)
    if emulated:
        result["notes"].append(f"note: {emulated}")
    if int8_note:
        result["notes"].append(int8_note)
    if peak is not None and peak.dtype != options.dtype:
        result["notes"].append(
            f"note: MFU is against the fp32 matmul peak: {options.dtype} products are emulated "
            f"on this CPU and reach less than fp32 ones"
        )
    result["implementations"] = list(impls)
    rows = _time_modes(impls, net.config, options, peak.tflops if peak else None)
    if peak is not None:
        _peak_again(result, rows, device, options, peak.tflops)
    _summarize(result, rows, device)
    # which CPU fast-path pieces the runs used here, and why (rule, measured, unavailable...)
    result["fast_pieces"] = [d.to_dict() for d in pieces.decisions()]
    synchronize(device)
    return result


def _int8_options(net: nn.Module, options: BenchOptions) -> tuple[BenchOptions, str | None]:
    """An int8 folder's model is timed in inference only, in fp32 (its int8 layers do their
    own arithmetic), without twins: mode both becomes infer with a note; train, another
    precision or --compare are refused in one line."""
    if not is_int8(net):
        return options, None
    if options.mode == "train" or options.compare or options.dtype != "fp32":
        raise ConfigError(
            "an int8 model is benchmarked in inference only, at fp32, without --compare "
            f"(asked: mode {options.mode}, {options.dtype}"
            f"{', --compare' if options.compare else ''}): its float weights are gone"
        )
    if options.mode == "both":
        note = "note: an int8 model: inference only (it cannot be trained)"
        return replace(options, mode="infer"), note
    return options, None


def _shape_fields(cfg: Any) -> dict[str, Any]:
    """A Mixer-family config's patch, width, depth, tokens, GELU; a zoo config's stage depths
    and widths (what it has of ``depths`` / ``embed_dims`` / ``embed_dim``)."""
    if hasattr(cfg, "hidden_dim"):
        return {"patch_size": list(cfg.patch_size), "hidden_dim": cfg.hidden_dim,
                "num_blocks": cfg.num_blocks, "num_tokens": cfg.num_tokens, "gelu": cfg.gelu}  # fmt: skip
    names = ("depths", "embed_dims", "embed_dim")
    return {n: getattr(cfg, n) for n in names if hasattr(cfg, n)}


def _header(label: str, cfg: Any, options: BenchOptions, device: torch.device) -> dict[str, Any]:
    """What was measured and where: the model, its FLOPs, the options and the machine."""
    return {
        "model": label,
        "config": {
            "family": cfg.family,
            "img_size": list(cfg.img_size),
            **_shape_fields(cfg),
            "num_classes": cfg.num_classes,
            "params": param_count(cfg),
        },
        "gflops_per_image": flops_per_image(cfg) / 1e9,
        "train_gflops_per_image": 3 * flops_per_image(cfg) / 1e9,
        "options": asdict(options),
        "machine": machine_info(device),
    }


def _time_modes(
    impls: dict[str, nn.Module], cfg: Any, options: BenchOptions, peak_tflops: float | None
) -> list[dict[str, Any]]:
    """The rows of every mode asked for, each mode on fresh copies of the implementations."""
    modes = ("infer", "train") if options.mode == "both" else (options.mode,)
    rows: list[dict[str, Any]] = []
    try:
        for mode in modes:
            copies = {name: copy.deepcopy(module) for name, module in impls.items()}
            rows += _run_mode(mode, copies, cfg, options, peak_tflops)
            del copies
    except torch.OutOfMemoryError as err:
        raise RunError(f"out of memory at batch {options.batch_size}: {err}") from err
    return rows


def _peak_again(
    result: dict[str, Any],
    rows: list[dict[str, Any]],
    device: torch.device,
    options: BenchOptions,
    before: float,
) -> None:
    """Measure the peak again after the models; the better of the two is the peak."""
    log.info("measuring the matmul peak again", extra=PROGRESS)
    again = _peak(device, options, result["matmul_peak"]["dtype"])
    result["matmul_peak_after"] = again.to_dict()
    if again.tflops > before:
        result["matmul_peak"] = again.to_dict()
        _rescale_mfu(rows, again.tflops)


def _summarize(result: dict[str, Any], rows: list[dict[str, Any]], device: torch.device) -> None:
    """The rows, their ratios (wall and, on CPU, process CPU time) and notes on the load."""
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    result["results"] = rows
    result["ratios"] = _ratios(rows)
    if device.type == "cpu":  # from process CPU time: robust to other processes at 1 thread
        result["ratios_cpu_time"] = _ratios(rows, "images_per_cpu_s")
    result["notes"] += _load_notes(result["machine"], device)
