"""``mlpmixer quantize``: a checkpoint in int8 for the CPU (weight-only, dynamic, static or
auto), or checked in fp8 on a GPU (nothing written: `deploy.fp8` builds it at load time)."""

from __future__ import annotations

from pathlib import Path

import click

from ..choices import GPU_METHODS, INT8_METHODS
from .options import POSITIVE_INT, calibration_options, checkpoint_option
from .printing import console, err_console, print_json
from .root import cli


@cli.command()
@checkpoint_option
@click.option(
    "--method",
    type=click.Choice([*INT8_METHODS, *GPU_METHODS, "auto"]),
    default="auto",
    show_default=True,
    help="auto: the fastest int8 method that beats fp32 on this machine at every --batch-size "
    "(static where the CPU has int8 units and --calibration is given). fp8: a GPU of compute "
    "capability >= 8.9.",
)
@click.option("--batch-size", "batch_sizes", type=POSITIVE_INT, multiple=True, default=(1, 32),
              show_default=True, metavar="N",
              help="The batch size(s) you will run (repeatable): a method slower than fp32 at "
              "any of them is not taken.")  # fmt: skip
@calibration_options("Data set whose training images fix static int8's activation ranges, or "
                     "that fp8 is checked on (any --dataset value of train).",
                     "How many (a random sample).")  # fmt: skip
@click.option("--keep-float", multiple=True, metavar="MODULE",
              help="Also keep this module in float, e.g. blocks.0.token_mixing (repeatable); "
              "the stem and the head always are.")  # fmt: skip
@click.option("--activation-bits", type=click.Choice(["auto", "7", "8"]), default="auto",
              show_default=True, help="static: activation range; auto: 8 where the CPU has "
              "VNNI/AMX, else 7 (full-range int8 products saturate there).")  # fmt: skip
@click.option("--force", is_flag=True, help="Quantize even where the method is slower than "
              "fp32 (fp8: than bf16).")  # fmt: skip
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="Where the model will run; auto: the method's (cpu for int8, cuda for fp8). "
              "cpu, cuda, cuda:N; int8 on a GPU is refused.")  # fmt: skip
@click.option("--out", default=None, help="Folder to write (quantized.safetensors + "
              "quantized.json); required for int8, not taken by fp8 (nothing is written).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def quantize(checkpoint: str, method: str, batch_sizes: tuple[int, ...], calibration: str | None,
             calibration_images: int, keep_float: tuple[str, ...], activation_bits: str,
             force: bool, device: str, out: str | None, as_json: bool) -> None:  # fmt: skip
    """Quantize a model to int8 for CPU inference, and say why the method was chosen; or check
    it in fp8 on a GPU.

    No method is used where it runs slower than fp32 on this machine: weight-only and dynamic
    are timed on the model at each --batch-size, static is decided from the CPU (VNNI/AMX
    int8 units); a slower one is refused with its measured ratios (exit 2) unless --force.
    Where no int8 method beats fp32, says what to use instead (fp32, or ONNX Runtime int8
    where it measured faster). fp8 (GPUs of compute capability >= 8.9) is checked against
    bf16 (agreement, speed) and not written: it is built from the float checkpoint at load
    time (mlpmixer.deploy.fp8.to_fp8); fp8 without such a GPU, or int8 on a GPU, is refused
    naming what to use instead (exit 2). Needs torchao: pip install 'mlpmixer[int8]'.
    """
    if method in GPU_METHODS:
        _fp8(checkpoint, "cuda" if device == "auto" else device, calibration, calibration_images, keep_float, force,
             out, as_json)  # fmt: skip
        return
    _int8_device(method, device)
    if out is None:
        raise click.MissingParameter(param_type="option", param_hint="'--out'")
    from ..checkpoints import load_model
    from ..deploy import detect, save_quantized
    from ..deploy import quantize as int8
    from ..deploy.accuracy import logits
    from ..deploy.calibration import calibration_images as read_calibration
    from ..deploy.choose import RULES, auto_method, verdict
    from ..deploy.extra import torchao_module
    from ..deploy.instead import advice, onnx_int8_ratios
    from ..deploy.plain import default_keep
    from ..errors import ConfigError
    from ..export.export import example_images
    from ..fileio import check_new_dir

    torchao_module()  # the missing extra is said first, before any loading
    # a folder of the user's is never written into (nor replaced): new, empty or an int8 model
    check_new_dir(Path(out), detect, "int8 model")
    if method == "static" and calibration is None:
        raise click.BadParameter("static int8 needs --calibration DATA", param_hint="--method")
    model = load_model(checkpoint).eval()
    batch_sizes = tuple(sorted(set(batch_sizes)))
    if method == "auto":
        chosen, verdicts = auto_method(model, calibration is not None, batch_sizes)
        if chosen is None:
            said = "; ".join(f"{v.method}: {v.reason}" for v in verdicts)
            waiting = [v.method for v in verdicts if v.fast and RULES[v.method].needs_calibration]
            if waiting:  # int8 can help here, with calibration images
                raise ConfigError(
                    f"no int8 method that needs no calibration beats fp32 here ({said}); "
                    f"{' and '.join(waiting)} would: give --calibration DATA"
                )
            instead = advice(checkpoint, onnx_int8_ratios(model, batch_sizes))
            raise ConfigError(
                f"int8 cannot help on this machine: no method beats fp32 ({said}); {instead}"
            )
    else:
        chosen = verdict(model, method, batch_sizes)
        verdicts = [chosen]
        if not chosen.fast and not force:
            raise ConfigError(
                f"{method} int8 would be slower than fp32 here: {chosen.reason}; "
                "use --force to quantize anyway, or --method auto"
            )
    images = None
    if chosen.method == "static":
        images = read_calibration(model.config, calibration, calibration_images)
    keep = (*default_keep(model), *keep_float)
    bits = None if activation_bits == "auto" else int(activation_bits)
    quantized = int8(
        model, chosen.method, calibration=images, keep_float=keep, activation_bits=bits
    )
    path = save_quantized(quantized, Path(out))
    check = images if images is not None else example_images(model, 16)
    diff = (logits(quantized, check) - logits(model, check)).abs().max().item()
    report = {
        "checkpoint": checkpoint,
        "out": str(path),
        "method": chosen.method,
        "why": chosen.reason,
        "speedup": chosen.speedup,
        "speedups": {str(b): r for b, r in chosen.ratios.items()},
        "batch_sizes": list(batch_sizes),
        "verdicts": [_verdict_json(v) for v in verdicts],
        "forced": force and not chosen.fast,
        "kept_in_float": list(quantized.kept_in_float),
        "quantized_layers": len(quantized.quantized),
        "activation_bits": quantized.activation_bits if chosen.method == "static" else None,
        "max_abs_dlogit": diff,
        "bytes": sum(p.stat().st_size for p in path.iterdir()),
    }
    if as_json:
        print_json(report)
        return
    source = "calibration" if images is not None else "random"
    forced = " (forced)" if report["forced"] else ""
    for line in (
        f"wrote {path} ({report['bytes'] / 1e6:.2f} MB): {quantized.describe()}",
        f"method {chosen.method}: {chosen.reason}{forced}",
        *(f"  also weighed {v.method}: {v.reason}" for v in verdicts if v is not chosen),
        f"max |logit difference| to fp32 {diff:.2e} on {check.shape[0]} {source} images",
    ):
        console.print(line, highlight=False, soft_wrap=True)


def _verdict_json(v) -> dict:  # type: ignore[no-untyped-def]
    ratios = {str(b): r for b, r in v.ratios.items()}
    return {"method": v.method, "fast": v.fast, "reason": v.reason, "speedups": ratios}


def _int8_device(method: str, device: str) -> None:
    """int8 runs on the CPU: refuse a GPU device; on a machine with a GPU, say what serves it."""
    import torch

    from ..deploy.fp8 import int8_on_gpu_refusal, parse_device
    from ..errors import ConfigError

    if device != "auto" and parse_device(device).type != "cpu":
        raise ConfigError(int8_on_gpu_refusal(method))
    if device == "auto" and torch.cuda.is_available():
        err_console.print(
            "note: the int8 model runs on the CPU; for inference on this machine's GPU use "
            "--method fp8 (compute capability >= 8.9) or bf16 (--precision bf16)",
            highlight=False,
            soft_wrap=True,
        )


FP8_BATCH = 256  # the step timed against bf16: a GPU needs a full batch to show its speed


def _fp8(checkpoint: str, device: str, calibration: str | None, calibration_images: int,
         keep_float: tuple[str, ...], force: bool, out: str | None, as_json: bool) -> None:  # fmt: skip
    """fp8 on ``device``: refused in one line where it has no fp8, else built from the float
    checkpoint, checked against bf16 (agreement, eager speed at batch 256) and reported."""
    from ..checkpoints import load_model
    from ..checkpoints.formats.int8 import is_int8, refuse_int8
    from ..deploy import fp8
    from ..deploy.calibration import calibration_images as read_calibration
    from ..deploy.plain import default_keep
    from ..errors import ConfigError
    from ..export.export import example_images

    fp8.check_fp8_device(device)  # before anything is read: the hardware is the first answer
    if out is not None:
        raise click.BadParameter(
            "an fp8 model is not written: it is built from the float checkpoint when loaded "
            "(mlpmixer.deploy.fp8.to_fp8); drop --out",
            param_hint="--out",
        )
    model = load_model(checkpoint).eval()
    if is_int8(model):
        raise refuse_int8("made fp8", checkpoint)
    built = fp8.to_fp8(model, device, keep=(*default_keep(model), *keep_float))
    reference = fp8.bf16_copy(model, device)
    if calibration is not None:
        images = read_calibration(model.config, calibration, calibration_images)
    else:
        images = example_images(model, FP8_BATCH)
    # agreement on every image; the first FP8_BATCH of them (or all, if fewer) are timed
    check = fp8.measure(reference, built.model, images, batch=FP8_BATCH)
    if check.speedup < 1.0 and not force:
        raise ConfigError(
            f"fp8 would be slower than bf16 here: measured {check.speedup:.2f}x bf16 at batch "
            f"{check.batch} (eager); serve bf16, or --force to report it anyway"
        )
    report = {
        "checkpoint": checkpoint,
        "method": "fp8",
        "device": str(device),
        "gpu": _device_name(device),
        "written": None,
        "fp8_layers": len(built.fp8_layers),
        "kept_in_bf16": list(built.kept_bf16),
        "forced": force and check.speedup < 1.0,
        **check.to_dict(),
    }
    if as_json:
        print_json(report)
    else:
        _print_fp8(built, check, report, "calibration" if calibration is not None else "random")


def _print_fp8(built, check, report: dict, source: str) -> None:  # type: ignore[no-untyped-def]
    """The fp8 report in three lines: the layers, the check against bf16, what to load."""
    for line in (
        f"{built.describe()} on {report['gpu']}",
        f"against bf16 on {check.images} {source} images: top-1 agreement "
        f"{100 * check.top1_agreement:.1f}%, max |logit difference| {check.max_abs_dlogit:.2e} "
        f"(largest |logit| {check.max_abs_logit:.2f}); {check.speedup:.2f}x bf16 at batch "
        f"{check.batch}, eager",
        "nothing written: fp8 is built from the float checkpoint when loaded: "
        f"mlpmixer.deploy.fp8.to_fp8(mlpmixer.load_model({report['checkpoint']!r})).model",
    ):
        console.print(line, highlight=False, soft_wrap=True)


def _device_name(device: str) -> str:
    import torch

    where = torch.device(device)
    return torch.cuda.get_device_name(where) if where.type == "cuda" else where.type
