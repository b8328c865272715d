"""``mlpmixer quantize``: a checkpoint in int8 (weight-only, dynamic, static or auto)."""

from __future__ import annotations

from pathlib import Path

import click

from ..deploy.methods import METHODS
from .options import POSITIVE_INT, checkpoint_option
from .printing import console, print_json
from .root import cli


@cli.command()
@checkpoint_option
@click.option(
    "--method",
    type=click.Choice([*METHODS, "auto"]),
    default="auto",
    show_default=True,
    help="auto: the fastest method that beats fp32 on this machine at every --batch-size "
    "(static where the CPU has int8 units and --calibration is given).",
)
@click.option("--batch-size", "batch_sizes", type=POSITIVE_INT, multiple=True, default=(1, 32),
              show_default=True, metavar="N",
              help="The batch size(s) you will run (repeatable): a method slower than fp32 at "
              "any of them is not taken.")  # fmt: skip
@click.option("--calibration", default=None, metavar="DATA",
              help="Data set whose training images fix static int8's activation ranges "
              "(any --dataset value of train).")  # fmt: skip
@click.option("--calibration-images", type=POSITIVE_INT, default=512, show_default=True,
              help="How many (a random sample).")  # fmt: skip
@click.option("--keep-float", multiple=True, metavar="MODULE",
              help="Also keep this module in float, e.g. blocks.0.token_mixing (repeatable); "
              "the stem and the head always are.")  # fmt: skip
@click.option("--force", is_flag=True, help="Quantize even where the method is slower than fp32.")
@click.option(
    "--out", required=True, help="Folder to write (quantized.safetensors + quantized.json)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def quantize(checkpoint: str, method: str, batch_sizes: tuple[int, ...], calibration: str | None,
             calibration_images: int, keep_float: tuple[str, ...], force: bool, out: str,
             as_json: bool) -> None:  # fmt: skip
    """Quantize a model to int8 for CPU inference, and say why the method was chosen.

    No method is used where it runs slower than fp32 on this machine: weight-only and dynamic
    are timed on the model at each --batch-size, static is decided from the CPU (VNNI/AMX
    int8 units); a slower one is refused with its measured ratios (exit 2) unless --force.
    Where no method beats fp32, says what to use instead (fp32, or ONNX Runtime int8 where it
    measured faster). Needs torchao: pip install 'mlpmixer[int8]'.
    """
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
    quantized = int8(model, chosen.method, calibration=images, keep_float=keep)
    path = save_quantized(quantized, Path(out))
    check = images if images is not None else _random_images(model)
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


def _random_images(model):  # type: ignore[no-untyped-def]
    import torch

    cfg = model.config
    return torch.randn(16, cfg.in_chans, *cfg.img_size, generator=torch.Generator().manual_seed(0))
