"""``mlpmixer export``: ONNX, TorchScript or an ExportedProgram, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from .options import checkpoint_option
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
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the exporter's).")
@click.option("--no-verify", is_flag=True, help="Skip running the file against PyTorch.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(checkpoint: str, fmt: str, out: str | None, opset: int | None, no_verify: bool,
           as_json: bool) -> None:  # fmt: skip
    """Export for deployment with a dynamic batch dimension, then check it against PyTorch.

    The file is run at batch sizes 1 and 3; its logits must match within 1e-4 (exit 1
    otherwise). ONNX needs the export extra: pip install 'mlpmixer[export]'.
    """
    from ..checkpoints import load_model
    from ..export import DEFAULT_SUFFIX, export_model, resolve_format

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
