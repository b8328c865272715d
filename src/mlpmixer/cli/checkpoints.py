"""``mlpmixer models``, ``info`` and ``convert``: the registry and checkpoint files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from ..choices import WRITABLE_FORMATS
from ..errors import EXIT_BAD_INPUT
from ..progress import printable
from .options import as_pair, img_size_option
from .printing import console, err_console, print_json
from .root import cli


@cli.command()
@click.option("--pattern", default="*", show_default=True, help="Shell-style filter on names.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--pretrained", is_flag=True, help="List published weights (name.tag) and their preprocessing."
)
def models(pattern: str, as_json: bool, pretrained: bool) -> None:
    """List registered models: parameters, GFLOPs per image, tokens, width."""
    from ..models import MixerConfig, flops_per_image, list_models, model_entry, param_count

    if pretrained:
        _print_pretrained(list_models(pattern, pretrained=True), as_json)
        return
    rows = []
    for name in list_models(pattern):
        entry = model_entry(name)
        cfg = entry.config
        # the isotropic families' shape; a family with its own config (a pyramid) has none
        isotropic = isinstance(cfg, MixerConfig)
        rows.append(
            {
                "name": name,
                "family": cfg.family,
                "params_m": round(param_count(cfg) / 1e6, 2),
                "backbone_params_m": round(param_count(cfg, include_head=False) / 1e6, 2),
                "paper_params_m": entry.paper_params_m,
                "gflops": round(flops_per_image(cfg) / 1e9, 3),
                "img_size": list(cfg.img_size),
                "patch": list(cfg.patch_size) if isotropic else None,
                "tokens": cfg.num_tokens if isotropic else None,
                "hidden_dim": cfg.hidden_dim if isotropic else None,
                "blocks": cfg.num_blocks if isotropic else None,
                "description": entry.description,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    headers = ("name", "params M", "paper M", "GFLOPs", "input", "tokens S", "C", "N")
    for column in headers:
        table.add_column(column, justify="left" if column == "name" else "right", no_wrap=True)
    for r in rows:
        size = "x".join(map(str, r["img_size"]))
        paper = "" if r["paper_params_m"] is None else str(r["paper_params_m"])
        table.add_row(
            r["name"], f"{r['params_m']:.2f}", paper, f"{r['gflops']:.2f}", size,
            *("" if r[k] is None else str(r[k]) for k in ("tokens", "hidden_dim", "blocks")),
        )  # fmt: skip
    wide_console(table).print(table)
    console.print(
        "GFLOPs: 2 x multiply-adds of one forward pass of one image. paper M: the paper's "
        "Table 1, which counts parameters without the 1000-way head."
    )


@cli.command()
@click.argument("checkpoint", required=False)
@img_size_option("Image size, N or HxW, where the file does not say (non-square grids).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--fast",
    "fast_pieces",
    is_flag=True,
    help="Which CPU fast-path pieces this machine uses, and why (for --model's shapes).",
)
@click.option(
    "--model",
    "model_name",
    default="mixer_b16_224",
    show_default=True,
    help="With --fast: the registered model whose shapes to decide for.",
)
def info(checkpoint: str | None, img_size: tuple[int, int] | None, as_json: bool,
         fast_pieces: bool, model_name: str) -> None:  # fmt: skip
    """Show a checkpoint's format, inferred architecture and classes (or --fast: the CPU
    fast path's pieces on this machine).

    Also checks that the weights load into that architecture: a file that `predict` or
    `eval` would refuse (missing or extra keys, complex tensors) is reported with the
    reason, exit 2.
    """
    import warnings

    if fast_pieces:
        _print_fast_pieces(checkpoint, model_name, as_json)
        return
    if checkpoint is None:
        raise click.UsageError("give a CHECKPOINT (or --fast)")

    from ..checkpoints import describe, read_checkpoint
    from ..checkpoints.load import check_loadable
    from ..errors import CheckpointError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = read_checkpoint(checkpoint, img_size=as_pair(img_size))
    problem = None
    try:
        check_loadable(read)
    except CheckpointError as err:
        problem = str(err)
    summary = {**describe(read), "loads": problem is None}
    if problem is not None:
        summary["load_error"] = problem
    if as_json:
        print_json(summary)
    else:
        _print_info(checkpoint, summary)
    for w in caught:
        err_console.print(f"warning: {printable(str(w.message))}", highlight=False, soft_wrap=True)
    if problem is not None:
        err_console.print(
            f"error: {printable(checkpoint)} will not load: {printable(problem)}",
            highlight=False,
            soft_wrap=True,
        )
        raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _print_fast_pieces(checkpoint: str | None, model_name: str, as_json: bool) -> None:
    """The fast path's decisions for a model's shapes: piece, case, what runs, why."""
    from ..cpu_kind import effective_cpu, measured_kind, this_cpu
    from ..models import model_config
    from ..models.fast import pieces
    from ..models.fast.survey import survey

    config = model_config(model_name) if checkpoint is None else _checkpoint_config(checkpoint)
    decisions = [d.to_dict() for d in survey(config)]
    kind = effective_cpu()
    capped = sorted(this_cpu().flags - kind.flags)
    import torch

    summary = {
        "cpu": kind.model,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "measured_kind": measured_kind(kind),
        "flags_capped": capped,
        "policy": pieces.policy(),
        "shapes_of": checkpoint or model_name,
        "pieces": decisions,
    }
    if as_json:
        print_json(summary)
        return
    known = summary["measured_kind"] or "not one the rules were measured on: probed"
    console.print(f"{kind.model} ({known}); policy {summary['policy']}", highlight=False)
    if capped:
        console.print(f"ISA caps leave out: {' '.join(capped)}", highlight=False)
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"shapes of {printable(checkpoint or model_name)}",
    )
    for column in ("piece", "case", "uses", "why"):
        table.add_column(column)
    for d in decisions:
        table.add_row(d["piece"], d["case"], d["choice"], d["why"])
    wide_console(table).print(table)


def _checkpoint_config(checkpoint: str) -> Any:
    from ..checkpoints import read_checkpoint

    return read_checkpoint(checkpoint).config


def _shape_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """A Mixer-family model's patch, tokens, widths and GELU; a zoo model's stages."""
    cfg = summary["config"]
    if "num_tokens" not in summary:  # the zoo's pyramids
        widths = cfg.get("embed_dims") or [cfg.get("embed_dim")]
        return [("stage depths", cfg["depths"]), ("stage widths", widths)]
    return [
        ("patch", "x".join(map(str, cfg["patch_size"]))),
        ("tokens S", summary["num_tokens"]),
        ("hidden C", cfg["hidden_dim"]),
        ("blocks N", cfg["num_blocks"]),
        ("token MLP D_S", cfg["tokens_mlp_dim"]),
        ("channel MLP D_C", cfg["channels_mlp_dim"]),
        ("GELU", summary["gelu"]),  # "erf" / "tanh", not the config's "none"
    ]


def _int8_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """An int8 folder's method, int8 layer count and what it keeps in float."""
    if "int8_method" not in summary:
        return []
    kept = ", ".join(summary["kept_in_float"]) or "nothing else"
    return [
        ("int8 method", summary["int8_method"]),
        ("int8 layers", summary["int8_layers"]),
        ("kept in float", f"{kept} (and every norm, activation and residual add)"),
    ]


def _image_size(summary: dict[str, Any]) -> str:
    """HxW, marked where the file does not say and the shapes cannot tell (the cost rows are
    then for that size)."""
    size = "x".join(map(str, summary["config"]["img_size"]))
    if summary.get("img_size_assumed"):
        return f"{size} (assumed: not in the file; give --img-size)"
    return size


def _print_info(checkpoint: str, summary: dict[str, Any]) -> None:
    cfg = summary["config"]
    table = Table(show_header=False, title=printable(checkpoint))
    for key, value in [
        ("format", summary["format"]),
        ("family", cfg.get("family", "mixer")),
        ("image size", _image_size(summary)),
        *_shape_rows(summary),
        ("classes", cfg["num_classes"]),
        ("parameters", f"{summary['params']:,}"),
        ("GFLOPs / image", f"{summary['gflops_per_image']:.3f}"),
        *_int8_rows(summary),
        ("loads", "yes" if summary["loads"] else "no (see the error below)"),
    ]:
        table.add_row(key, str(value))
    console.print(table)


@cli.command()
@click.argument("source")
@click.argument("destination", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "fmt",
    type=click.Choice(WRITABLE_FORMATS),
    default=None,
    help="Output format (default from DESTINATION: .npz official, .pth/.pt/.bin timm, else native).",
)
@img_size_option("Image size, N or HxW, where the file does not say (non-square grids).")
def convert(source: str, destination: Path, fmt: str | None, img_size: Any) -> None:
    """Convert any readable checkpoint (native, official .npz, timm, deit ResMLP, lucidrains)
    to the native, official .npz (Mixers only), timm or bare state-dict format."""
    import warnings

    from ..checkpoints import convert as convert_checkpoint

    if destination.exists() and not (destination.is_file() or destination.is_dir()):
        raise click.BadParameter(  # /dev/null, a FIFO: never replaced, never written into
            f"{destination} exists and is not a regular file or folder", param_hint="DESTINATION"
        )
    options = {"img_size": as_pair(img_size)} if img_size else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = convert_checkpoint(source, destination, format=fmt, **options)
    for w in caught:
        err_console.print(f"warning: {w.message}", highlight=False)
    console.print(f"wrote {out}")


def wide_console(table: Table) -> Console:
    """The console, or, in a pipe (``| cat``, ``| less``), one as wide as ``table`` needs:
    rich takes 80 columns there and cut the last columns to "…"."""
    if console.is_terminal:
        return console
    width = Console(width=10_000).measure(table).maximum
    return Console(width=max(console.width, width), markup=False, highlight=False, emoji=False)


def _print_pretrained(names: list[str], as_json: bool) -> None:
    from ..models.pretrained import weights_cfg

    rows = [{"name": n, **weights_cfg(*n.split(".", 1))} for n in names]
    if as_json:
        print_json(rows)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("classes", justify="right")
    table.add_column("mean / std, resize", no_wrap=True)
    table.add_column("source", overflow="fold")  # URLs wrap whole, never cut to "…"
    for r in rows:
        preprocessing = (
            f"{_channels(r['mean'])} / {_channels(r['std'])}, "
            f"{r['interpolation']} {r['crop_pct']:g}"
        )
        table.add_row(r["name"], str(r["num_classes"]), preprocessing, r["source"])
    # Wide enough for names, preprocessing and an hf-hub id on one line, also when piped.
    Console(width=max(console.width, 150), markup=False, highlight=False, emoji=False).print(table)


def _channels(values: tuple[float, ...]) -> str:
    """0.5 for (0.5, 0.5, 0.5); 0.485,0.456,0.406 when the channels differ."""
    return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{v:g}" for v in values)
