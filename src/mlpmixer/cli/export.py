"""``mlpmixer export``: ONNX, TorchScript or an ExportedProgram, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from .options import calibration_options, checkpoint_option
from .out_dir import RESULTS, product_dir, regular_file_or_new
from .printing import console, print_json
from .root import cli


@cli.command()
@checkpoint_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript", "exported-program"]),
    default=None,
    help="Default: from --out's suffix (.onnx, .ts/.pt, .pt2), else onnx.",
)
@click.option(
    "--out",
    default=None,
    callback=lambda ctx, param, v: v and str(regular_file_or_new(Path(v), "--out")),
    help="File to write. Default: <name>.onnx|.ts|.pt2 next to the checkpoint (RUN/export/ for a "
    f"run's model); for a hub id or URL, {RESULTS}/export/.",
)
@click.option("--int8", "int8", type=click.Choice(["dynamic", "static"]), default=None,
              help="An ONNX Runtime int8 model (per-channel weights; static: QDQ calibrated on "
              "--calibration), checked against the float model.")  # fmt: skip
@calibration_options("--int8: data set whose training images calibrate static int8 and check "
                     "the file (any --dataset value of train).",
                     "--int8: how many (a random sample).")  # fmt: skip
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the exporter's).")
@click.option("--no-verify", is_flag=True, help="Skip running the file against PyTorch.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(checkpoint: str, fmt: str, out: str | None, int8: str | None, calibration: str | None,
           calibration_images: int, opset: int | None, no_verify: bool,
           as_json: bool) -> None:  # fmt: skip
    """Export for deployment with a dynamic batch dimension, then check it against PyTorch.

    The file is run at batch sizes 1 and 3; its logits must match within 1e-4 (exit 1
    otherwise). ONNX needs the export extra: pip install 'mlpmixer[export]'.
    """
    from ..checkpoints import load_model
    from ..export import DEFAULT_SUFFIX, export_model, resolve_format

    if int8 is not None:
        _export_int8(checkpoint, fmt, out, int8, calibration, calibration_images, opset, as_json)
        return
    if out is None:
        fmt = fmt or "onnx"
        name = Path(checkpoint.rstrip("/")).stem + DEFAULT_SUFFIX[fmt]
        path = product_dir(None, checkpoint, "export") / name
    else:
        path = Path(out)
        fmt = resolve_format(path, fmt) if fmt or path.suffix else "onnx"
    if opset is not None and fmt != "onnx":  # never ignored without a word
        raise click.BadParameter(f"applies to ONNX only; {path} is {fmt}", param_hint="--opset")
    source = {"checkpoint": checkpoint}  # the report PATH.json is swapped in with the file
    report = export_model(
        load_model(checkpoint), path, fmt, verify=not no_verify, opset=opset, report=source
    )
    data = {**source, **report.to_dict()}
    if as_json:
        print_json(data)
        return
    check = (
        "not verified"
        if report.max_abs_diff is None
        else (
            f"max |logit difference| {report.max_abs_diff:.2e} at batch sizes {report.verified_batch_sizes}"
        )
    )
    console.print(
        f"wrote {path} ({report.format}, {report.bytes / 1e6:.2f} MB): {check}",
        highlight=False,
        soft_wrap=True,
    )


def _export_int8(checkpoint: str, fmt: str | None, out: str | None, method: str,
                 calibration: str | None, count: int, opset: int | None,
                 as_json: bool) -> None:  # fmt: skip
    """``export --int8``: an ONNX Runtime int8 file, checked against the float model."""
    from ..checkpoints import load_model
    from ..deploy.calibration import calibration_images
    from ..export.onnx_int8 import export_onnx_int8

    if fmt not in (None, "onnx"):
        raise click.BadParameter(f"--int8 writes ONNX, not {fmt}", param_hint="--format")
    if method == "static" and calibration is None:
        raise click.BadParameter("static int8 needs --calibration DATA", param_hint="--int8")
    if out is None:
        name = Path(checkpoint.rstrip("/")).stem + f"-int8-{method}.onnx"
        path = product_dir(None, checkpoint, "export") / name
    else:
        path = Path(out)
    model = load_model(checkpoint).eval()
    images = None
    if calibration is not None:
        images = calibration_images(model.config, calibration, count)
    report = export_onnx_int8(model, path, method, calibration=images, opset=opset)
    data = {"checkpoint": checkpoint, **report.to_dict()}
    if as_json:
        print_json(data)
        return
    console.print(
        f"wrote {path} (ONNX int8 {method}, {report.bytes / 1e6:.2f} MB): top-1 agreement with "
        f"the float model {report.top1_agreement:.1%} on {report.check_images} images, max "
        f"|logit difference| {report.max_abs_diff:.3g}",
        highlight=False,
        soft_wrap=True,
    )
