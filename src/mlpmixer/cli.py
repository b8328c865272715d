"""The ``mlpmixer`` command line: parses arguments, calls the library, prints results.

Exit codes: 0 success, 1 the run failed, 2 bad usage or input (see `mlpmixer.errors`).
Errors are one or two lines; ``mlpmixer --debug COMMAND`` shows the traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import sys
import traceback
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from .errors import EXIT_RUN_FAILED, MixerError

# Messages, paths and class names are printed as plain text: with rich's markup on, any
# "[...]" in them was swallowed ("mlpmixer[hf]" lost "[hf]") or crashed the printer.
console = Console(markup=False, highlight=False)
err_console = Console(stderr=True, markup=False, highlight=False)


def _without_worker_traceback(message: str) -> str:
    """The original error's own line when a DataLoader worker re-raised it with its traceback.

    PyTorch rebuilds an exception from a worker process as ``Caught X in DataLoader worker
    process N.`` followed by the worker's whole traceback; the user needs only the last line
    (``mlpmixer.errors.DataError: cannot read image PATH: ...``); ``--debug`` shows the rest.
    """
    if "DataLoader worker" not in message or "Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    name, sep, text = last.partition(": ")
    return text if sep and "Error" in name else last


class MixerGroup(click.Group):
    """A click group that turns library errors into short messages and documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv[1:] or ctx.params.get("debug", False)
        try:
            return super().invoke(ctx)
        except MixerError as err:
            if debug:
                traceback.print_exc()
            message = _without_worker_traceback(str(err))
            err_console.print(f"error: {message}", highlight=False, soft_wrap=True)
            ctx.exit(err.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            ctx.exit(130)
        except BrokenPipeError:  # `mlpmixer predict ... | head -1`: click exits quietly
            raise
        except OSError as err:  # the system refused (disk full, read-only, permission)
            if debug:
                traceback.print_exc()
            where = f" ({err.filename})" if err.filename else ""
            full = err.errno in (errno.ENOSPC, errno.EDQUOT)
            hint = (
                "free space and run again (training: --resume RUN_DIR continues from the last "
                "checkpoint, which is complete: writes are atomic)"
                if full
                else "check the path and its permissions"
            )
            err_console.print(
                f"error: {err.strerror or err}{where}; {hint}",
                highlight=False,
                soft_wrap=True,
            )
            ctx.exit(EXIT_RUN_FAILED)
        except Exception as err:  # an unexpected failure: say so briefly, traceback on --debug
            if debug:
                traceback.print_exc()
            else:
                err_console.print(
                    f"error: {type(err).__name__}: {err}\n"
                    "(this looks like a bug; run with --debug for the traceback and report it)",
                    highlight=False,
                    soft_wrap=True,
                )
            ctx.exit(EXIT_RUN_FAILED)


class _FiniteFloatRange(click.FloatRange):
    """A float range that also refuses nan and inf (they compare False, so a range lets them in)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# Numeric flag types: a value that makes no sense is a usage error (exit 2) naming the flag,
# never silently dropped or turned into a traceback later.
POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)
POSITIVE_FLOAT = _FiniteFloatRange(min=0, min_open=True)
NON_NEGATIVE_FLOAT = _FiniteFloatRange(min=0)
FRACTION = _FiniteFloatRange(min=0, max=1, min_open=True)  # crop_pct: (0, 1]
SEED = click.IntRange(0, 2**32 - 1)  # numpy's and the DataLoader's generators take < 2**32


def _checked_device(ctx: Any, param: Any, value: str | None) -> str | None:
    """``--device`` callback: an unknown or absent device is bad input, before any work."""
    from .devices import check_device

    if value is not None and value != "auto":
        check_device(value)
    return value


def _dir_or_new(ctx: Any, param: Any, value: str | None) -> str | None:
    """An output directory must be a directory or not exist yet (/dev/null is neither)."""
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise click.BadParameter(f"{value} exists and is not a directory", ctx, param)
    return value


def _regular_file_or_new(path: Path | None, flag: str) -> Path | None:
    """An output file must be new or a regular file: /dev/null, a FIFO... cannot be replaced."""
    if path is not None and path.exists() and not path.is_file():
        raise click.BadParameter(f"{path} exists and is not a regular file", param_hint=flag)
    return path


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``...): class names and file names
    come from files, and an ANSI escape in one would drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


# The option every command that reads a trained model shares.
checkpoint_option = click.option(
    "--checkpoint",
    required=True,
    help="Run directory (or its model/, checkpoints/last.pt), .safetensors, .npz, timm file or hub id.",
)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group(cls=MixerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="mlpmixer")
def cli(debug: bool) -> None:
    """MLP-Mixer for PyTorch: models, checkpoints, training, evaluation and analyses.

    Exit codes: 0 success, 1 run failed, 2 bad usage or input.
    """
    show_progress()


class _StderrLines(logging.Handler):
    """Library progress (``logging`` INFO of ``mlpmixer.*``) as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"... {self.format(record)}", err=True)


def show_progress() -> None:
    """Progress lines on stderr (never stdout: --json stays parseable) when stderr is a
    terminal; MLPMIXER_PROGRESS=1 forces them (logs, CI), =0 silences them."""
    import os

    setting = os.environ.get("MLPMIXER_PROGRESS", "auto")
    wanted = setting == "1" or (setting == "auto" and sys.stderr.isatty())
    logger = logging.getLogger("mlpmixer")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrLines)]:
        logger.removeHandler(handler)
    if wanted:
        logger.addHandler(_StderrLines())
        logger.setLevel(logging.INFO)


@cli.command()
@click.option("--pattern", default="*", show_default=True, help="Shell-style filter on names.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(pattern: str, as_json: bool) -> None:
    """List registered models: parameters, GFLOPs per image, tokens, width."""
    from .models import flops_per_image, list_models, model_entry, param_count

    rows = []
    for name in list_models(pattern):
        entry = model_entry(name)
        cfg = entry.config
        rows.append(
            {
                "name": name,
                "params_m": round(param_count(cfg) / 1e6, 2),
                "backbone_params_m": round(param_count(cfg, include_head=False) / 1e6, 2),
                "paper_params_m": entry.paper_params_m,
                "gflops": round(flops_per_image(cfg) / 1e9, 3),
                "img_size": list(cfg.img_size),
                "patch": list(cfg.patch_size),
                "tokens": cfg.num_tokens,
                "hidden_dim": cfg.hidden_dim,
                "blocks": cfg.num_blocks,
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
            str(r["tokens"]), str(r["hidden_dim"]), str(r["blocks"]),
        )  # fmt: skip
    console.print(table)
    console.print(
        "GFLOPs: 2 x multiply-adds of one forward pass of one image. paper M: the paper's "
        "Table 1, which counts parameters without the 1000-way head."
    )


@cli.command()
@click.argument("checkpoint")
@click.option(
    "--img-size", type=POSITIVE_INT, nargs=2, default=None, help="H W, for non-square grids."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(checkpoint: str, img_size: tuple[int, int] | None, as_json: bool) -> None:
    """Show a checkpoint's format, inferred architecture and classes."""
    from .checkpoints import describe, read_checkpoint

    summary = describe(read_checkpoint(checkpoint, img_size=img_size))
    if as_json:
        print_json(summary)
        return
    cfg = summary["config"]
    table = Table(show_header=False, title=checkpoint)
    for key, value in [
        ("format", summary["format"]),
        ("image size", "x".join(map(str, cfg["img_size"]))),
        ("patch", "x".join(map(str, cfg["patch_size"]))),
        ("tokens S", summary["num_tokens"]),
        ("hidden C", cfg["hidden_dim"]),
        ("blocks N", cfg["num_blocks"]),
        ("token MLP D_S", cfg["tokens_mlp_dim"]),
        ("channel MLP D_C", cfg["channels_mlp_dim"]),
        ("classes", cfg["num_classes"]),
        ("GELU", cfg["gelu"]),
        ("parameters", f"{summary['params']:,}"),
        ("GFLOPs / image", f"{summary['gflops_per_image']:.3f}"),
    ]:
        table.add_row(key, str(value))
    console.print(table)


@cli.command()
@click.argument("source")
@click.argument("destination", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "fmt",
    type=click.Choice(["native", "official", "timm", "state_dict"]),
    default=None,
    help="Output format (default from DESTINATION: .npz official, .pth/.pt/.bin timm, else native).",
)
@click.option(
    "--img-size", type=POSITIVE_INT, nargs=2, default=None, help="H W, for non-square grids."
)
def convert(source: str, destination: Path, fmt: str | None, img_size: Any) -> None:
    """Convert a checkpoint between the native, official .npz and timm formats."""
    import warnings

    from .checkpoints import convert as convert_checkpoint

    options = {"img_size": img_size} if img_size else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = convert_checkpoint(source, destination, format=fmt, **options)
    for w in caught:
        err_console.print(f"warning: {w.message}", highlight=False)
    console.print(f"wrote {out}")


def _train_options(func: Any) -> Any:
    """Flags shared by ``train`` and ``finetune`` (each becomes a ``--set`` override)."""
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML config (default: the data set's built-in recipe)."),
        click.option("--epochs", type=POSITIVE_INT, default=None, help="Epochs (train.epochs)."),
        click.option("--steps", type=POSITIVE_INT, default=None, help="Total optimizer steps (train.steps; overrides epochs)."),
        click.option("--batch-size", type=POSITIVE_INT, default=None, help="Global batch size, over all processes."),
        click.option("--lr", type=POSITIVE_FLOAT, default=None, help="Peak learning rate (optim.lr)."),
        click.option("--seed", type=SEED, default=None, help="Seed of initialisation, data order and augmentation."),
        click.option("--device", default=None, callback=_checked_device,
                     help="auto, cpu, cuda, cuda:N (train.device)."),
        click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
                     help="bf16 autocast (CPU/GPU) or fp16 with loss scaling (GPU)."),
        click.option("--out", callback=_dir_or_new, default=None,
                     help="Run directory (default runs/<dataset>-<model>-<time>)."),
        click.option("--skip-bad-images", is_flag=True, default=False,
                     help="Leave unreadable image files out (listed in RUN/skipped_images.txt) instead of stopping."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override any config key, e.g. --set optim.lr=1e-3 (repeatable)."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _report_run(result: Any, as_json: bool) -> None:
    import os

    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only the main process reports
    summary = result.summary
    if as_json:
        print_json(summary)
        return
    table = Table(show_header=False, box=box.SIMPLE, pad_edge=False)
    rows = [
        ("model", summary["model"]),
        ("data set", summary["dataset"]),
        ("test top-1", f"{summary.get('test_top1', float('nan')):.4f}"),
    ]
    if "test_top5" in summary:
        rows.append(("test top-5", f"{summary['test_top5']:.4f}"))
    if "ema_test_top1" in summary:
        rows.append(("EMA test top-1", f"{summary['ema_test_top1']:.4f}"))
    rows += [
        ("epochs / steps", f"{summary['epochs']} / {summary['steps']}"),
        ("training time", f"{summary['train_seconds']:.1f} s"),
        ("images / second", f"{summary['images_per_second']:.0f}"),
        ("parameters", f"{summary['params']:,}"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    run_dir = result.run_dir
    console.print(
        f"wrote {run_dir}/: config.yaml, metrics.jsonl, summary.json, curves.png, "
        f"model/ (load with mlpmixer.load_model('{run_dir}/model')), checkpoints/last.pt",
        highlight=False,
        soft_wrap=True,
    )
    if summary.get("skipped_images"):
        console.print(
            f"skipped {summary['skipped_images']} unreadable image(s), listed in "
            f"{run_dir}/skipped_images.txt",
            highlight=False,
            soft_wrap=True,
        )


@cli.command()
@click.option(
    "--model", default=None, help="Registered model name (model.name; default: the recipe's)."
)
@click.option(
    "--dataset",
    default=None,
    help="digits (default), mnist5k, mnist, fashion-mnist, cifar10, cifar100, hf:NAME, or a directory.",
)
@click.option(
    "--resume",
    "resume",
    default=None,
    metavar="RUN_DIR",
    help="Continue RUN_DIR from its last checkpoint (exactly, same seed).",
)
@_train_options
def train(model: str | None, dataset: str | None, resume: str | None, config_file: str | None,
          sets: tuple[str, ...], as_json: bool, **flags: Any) -> None:  # fmt: skip
    """Train a Mixer (default: a small one on scikit-learn's digits, under a minute on a CPU).

    Writes a run directory with config.yaml, metrics.jsonl, summary.json, curves.png and the
    final model. Multi-GPU: torchrun --nproc_per_node N -m mlpmixer train ...
    """
    from .train import assemble_config, flag_overrides
    from .train import train as run_training

    if resume:
        if config_file:
            raise click.UsageError("--resume takes the config from RUN_DIR; drop --config")
        overrides = [*flag_overrides(model=model, dataset=dataset, **flags), *sets]
        result = run_training(resume=resume, overrides=overrides)
    else:
        config = assemble_config(config_file, dataset, sets, model=model, **flags)
        result = run_training(config)
    _report_run(result, as_json)


@cli.command()
@click.option(
    "--from",
    "checkpoint",
    required=True,
    metavar="CHECKPOINT",
    help="Pre-trained weights: run directory model/, .npz, timm file or hub id.",
)
@click.option("--dataset", required=True, help="Data set to fine-tune on (as for train).")
@click.option(
    "--img-size",
    type=POSITIVE_INT,
    default=None,
    help="Fine-tuning resolution; token mixing is resized block-diagonally (e.g. 448).",
)
@_train_options
def finetune(checkpoint: str, dataset: str, img_size: int | None, config_file: str | None,
             sets: tuple[str, ...], as_json: bool, **flags: Any) -> None:  # fmt: skip
    """Fine-tune a checkpoint: SGD momentum 0.9, cosine, clipping at 1, a fresh head.

    Example: mlpmixer finetune --from hf-hub:timm/mixer_b16_224.goog_in21k --dataset cifar10 --img-size 448
    """
    from .train import finetune_config, flag_overrides, load_config
    from .train import train as run_training

    base = load_config(config_file) if config_file else None
    config = finetune_config(checkpoint, dataset, img_size, base)
    config = config.override([*flag_overrides(**flags), *sets])
    _report_run(run_training(config), as_json)


# --- evaluation, prediction, few-shot, export and the paper's analyses (issue 4) ---

_RESULTS = "results"


def out_dir_option(command: str, writes: str) -> Any:
    """``--out-dir`` with the default ``results/<command>``; ``writes`` says what goes there."""
    return click.option(
        "--out-dir",
        callback=_dir_or_new,  # /dev/null or a file: a usage error, not a crash
        default=f"{_RESULTS}/{command}",
        show_default=True,
        help=writes,
    )


def _int_list(value: str, name: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {value!r}", param_hint=name
        ) from None


def _floats(value: str | None, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers, got {value!r}", param_hint=name
        ) from None


@cli.command("eval")
@checkpoint_option
@click.option(
    "--dataset", required=True, help="digits, mnist5k, mnist, cifar10, ..., hf:NAME or a directory."
)
@click.option("--split", default="test", show_default=True, help="train or test (val).")
@click.option("--batch-size", type=POSITIVE_INT, default=256, show_default=True)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu, cuda, cuda:N.",
    callback=_checked_device,
)
@click.option("--mean", default=None, help="Override the checkpoint's mean, e.g. 0.5,0.5,0.5.")
@click.option("--std", default=None, help="Override the checkpoint's std.")
@click.option("--crop-pct", type=FRACTION, default=None, help="Override the checkpoint's crop_pct.")
@click.option("--interpolation", default=None, help="Override: nearest, bilinear, bicubic, area.")
@click.option("--root", default=None, help="Where named data sets live (default $MLPMIXER_DATA).")
@out_dir_option("eval", "Writes eval.json and confusion.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate_command(checkpoint: str, dataset: str, split: str, batch_size: int, device: str,
                     mean: str | None, std: str | None, crop_pct: float | None,
                     interpolation: str | None, root: str | None, out_dir: str, as_json: bool) -> None:  # fmt: skip
    """Top-1, top-5, per-class accuracy, loss and a confusion matrix on a data set split.

    Images are prepared with the checkpoint's config (size, channels, crop, interpolation,
    mean, std) unless overridden. Example: mlpmixer eval --checkpoint runs/digits/model --dataset digits
    """
    from .analysis.runs import write_json
    from .evaluate import evaluate_checkpoint, save_confusion_png
    from .evaluate.eval import checkpoint_label

    result, _ = evaluate_checkpoint(
        checkpoint, dataset, split, batch_size, device=device, mean=_floats(mean, "--mean"),
        std=_floats(std, "--std"), crop_pct=crop_pct, interpolation=interpolation, root=root,
    )  # fmt: skip
    out = Path(out_dir)
    data = {"checkpoint": checkpoint, "dataset": dataset, "split": split, **result.to_dict()}
    data["png"] = str(out / "confusion.png")
    title = f"{checkpoint_label(checkpoint)} on {dataset} ({split}): top-1 {100 * result.top1:.2f}%"
    save_confusion_png(out / "confusion.png", result.confusion, result.class_names, title)
    write_json(out / "eval.json", data)
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=box.SIMPLE, pad_edge=False)
    for key, value in [
        ("images", result.num_examples),
        ("top-1", f"{100 * result.top1:.2f}%"),
        (f"top-{result.top5_k}", f"{100 * result.top5:.2f}%"),
        ("loss", f"{result.loss:.4f}"),
    ]:
        table.add_row(key, str(value))
    console.print(table)
    per_class = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("class", "images", "accuracy"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, count, acc in zip(
        result.class_names, result.per_class_count, result.per_class_accuracy, strict=True
    ):
        per_class.add_row(printable(name), str(count), "-" if acc is None else f"{100 * acc:.1f}%")
    if len(result.class_names) <= 30:
        console.print(per_class)
    console.print(f"wrote {out / 'eval.json'} and {out / 'confusion.png'}", highlight=False)


@cli.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@checkpoint_option
@click.option("--top-k", type=POSITIVE_INT, default=5, show_default=True)
@click.option("--batch-size", type=POSITIVE_INT, default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=_checked_device)
@click.option(
    "--out-dir",
    callback=_dir_or_new,
    default=f"{_RESULTS}/predict",
    show_default=True,
    help="Writes predictions.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def predict(images: tuple[str, ...], checkpoint: str, top_k: int, batch_size: int, device: str,
            out_dir: str, as_json: bool) -> None:  # fmt: skip
    """Top-k classes with probabilities for image files (directories are searched).

    Any image PIL reads (JPEG, PNG, WebP, grayscale, RGBA, 16-bit); resized and cropped as
    the checkpoint's config says. Unreadable files are reported by name, the others are
    still predicted, and the exit status is then 1.
    """
    from .analysis.runs import write_json
    from .checkpoints import load_model
    from .evaluate import predict_files

    report = predict_files(load_model(checkpoint), list(images), top_k, batch_size, device)
    data = {"checkpoint": checkpoint, **report.to_dict()}
    write_json(Path(out_dir) / "predictions.json", data)
    if as_json:
        print_json(data)
    else:  # one line per image: paths are never cut, and the output greps well
        for p in report.predictions:
            classes = ", ".join(f"{printable(t['class'])} ({t['probability']:.3f})" for t in p.top)
            click.echo(f"{printable(p.path)}: {classes}")
    for failure in report.failures:
        message = failure["error"]
        if failure["path"] not in message:
            message = f"{failure['path']}: {message}"
        err_console.print(
            f"error: {printable(message)}",
            highlight=False,
            soft_wrap=True,
        )
    if not report.ok:
        raise click.exceptions.Exit(1)


@cli.command()
@checkpoint_option
@click.option("--dataset", required=True, help="Data set with train and test splits.")
@click.option(
    "--shots", default="1,5,10,25", show_default=True, help="Images per class, comma-separated."
)
@click.option(
    "--seeds",
    type=POSITIVE_INT,
    default=5,
    show_default=True,
    help="Draws of the shots to average over.",
)
@click.option(
    "--heldout-per-class",
    type=POSITIVE_INT,
    default=10,
    show_default=True,
    help="Held-out images per class that choose the l2 regulariser.",
)
@click.option("--batch-size", type=POSITIVE_INT, default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=_checked_device)
@click.option(
    "--out-dir",
    callback=_dir_or_new,
    default=f"{_RESULTS}/fewshot",
    show_default=True,
    help="Writes fewshot.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fewshot(checkpoint: str, dataset: str, shots: str, seeds: int, heldout_per_class: int,
            batch_size: int, device: str, out_dir: str, as_json: bool) -> None:  # fmt: skip
    """Few-shot linear probes on frozen features, as in the paper.

    Closed-form l2-regularised least squares onto {-1, +1} one-vs-all targets; the
    regulariser is picked on held-out training images; test accuracy averaged over seeds.
    """
    from .analysis.runs import write_json
    from .evaluate.fewshot import fewshot_checkpoint

    result = fewshot_checkpoint(
        checkpoint, dataset, _int_list(shots, "--shots"), list(range(seeds)), batch_size,
        device, heldout_per_class=heldout_per_class,
    )  # fmt: skip
    data = {"checkpoint": checkpoint, "dataset": dataset, **result.to_dict()}
    write_json(Path(out_dir) / "fewshot.json", data)
    if as_json:
        print_json(data)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("shots", "accuracy", "std", "seeds"):
        table.add_column(column, justify="right")
    for r in result.results:
        table.add_row(
            str(r.shots),
            f"{100 * r.mean_accuracy:.2f}%",
            f"{100 * r.std_accuracy:.2f}",
            str(len(r.accuracies)),
        )
    console.print(table)
    console.print(f"wrote {Path(out_dir) / 'fewshot.json'}", highlight=False)


@cli.command()
@checkpoint_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript", "exported-program"]),
    default=None,
    help="Default: from --output's suffix (.onnx, .ts/.pt, .pt2), else onnx.",
)
@click.option(
    "--output",
    default=None,
    callback=lambda ctx, param, v: v and str(_regular_file_or_new(Path(v), "--output")),
    help="File to write (default results/export/<name>.onnx|.ts|.pt2).",
)
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the exporter's).")
@click.option("--no-verify", is_flag=True, help="Skip running the file against PyTorch.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(checkpoint: str, fmt: str, output: str | None, opset: int | None, no_verify: bool,
           as_json: bool) -> None:  # fmt: skip
    """Export for deployment with a dynamic batch dimension, then check it against PyTorch.

    The file is run at batch sizes 1 and 3; its logits must match within 1e-4 (exit 1
    otherwise). ONNX needs the export extra: pip install 'mlpmixer[export]'.
    """
    from .analysis.runs import write_json
    from .checkpoints import load_model
    from .export import DEFAULT_SUFFIX, export_model, resolve_format

    if output is None:
        fmt = fmt or "onnx"
        name = Path(checkpoint.rstrip("/")).stem + DEFAULT_SUFFIX[fmt]
        path = Path(_RESULTS, "export", name)
    else:
        path = Path(output)
        fmt = resolve_format(path, fmt) if fmt or path.suffix else "onnx"
    report = export_model(load_model(checkpoint), path, fmt, verify=not no_verify, opset=opset)
    data = {"checkpoint": checkpoint, **report.to_dict()}
    write_json(path.with_name(path.name + ".json"), data)
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


@cli.group()
def analyze() -> None:
    """The paper's analyses, each writing a PNG and a JSON file.

    \b
    tokens       token-mixing weights drawn on the patch grid
    cka          linear CKA between all layers (of one or two checkpoints)
    permutation  order invariance: Mixer vs CNN on permuted pixels
    """


@analyze.command("tokens")
@checkpoint_option
@click.option("--blocks", default="1,2,3", show_default=True, help="Blocks to draw (1 = first).")
@click.option(
    "--units",
    type=POSITIVE_INT,
    default=32,
    show_default=True,
    help="Hidden units drawn per block.",
)
@out_dir_option("analyze", "Writes tokens.json and tokens.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def analyze_tokens(checkpoint: str, blocks: str, units: int, out_dir: str, as_json: bool) -> None:
    """Token-mixing hidden units as images on the patch grid (paper, Fig. 5).

    Units are paired with their most opposite unit and the pairs sorted by spatial frequency.
    """
    from .analysis.runs import token_mixing_run

    data = token_mixing_run(checkpoint, out_dir, _int_list(blocks, "--blocks"), units)
    if as_json:
        print_json(data)
        return
    for b in data["blocks"]:
        console.print(
            f"block {b['block'] + 1}: {b['num_units']} units on {b['grid'][0]}x{b['grid'][1]} patches, "
            f"{100 * b['fraction_opposite_pairs']:.0f}% of pairs opposite (corr < -0.5), "
            f"median spread {b['median_spread']:.3f}", highlight=False,
        )  # fmt: skip
    console.print(f"wrote {data['png']}", highlight=False)


@analyze.command("cka")
@checkpoint_option
@click.option("--checkpoint-b", default=None, help="Second checkpoint: CKA across the two models.")
@click.option("--dataset", default=None, help="Data set whose test images are used.")
@click.option(
    "--images",
    "image_paths",
    multiple=True,
    help="Image files or directories instead of --dataset.",
)
@click.option("--num-images", type=POSITIVE_INT, default=256, show_default=True)
@click.option("--batch-size", type=POSITIVE_INT, default=128, show_default=True)
@out_dir_option("analyze", "Writes cka.json and cka.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def analyze_cka(checkpoint: str, checkpoint_b: str | None, dataset: str | None,
                image_paths: tuple[str, ...], num_images: int, batch_size: int, out_dir: str,
                as_json: bool) -> None:  # fmt: skip
    """Linear CKA between the stem and every block's output, as a heatmap."""
    from .analysis.runs import cka_run

    data = cka_run(
        checkpoint, out_dir, dataset, list(image_paths), checkpoint_b, num_images, batch_size
    )
    if as_json:
        print_json(data)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    for name in data["layers_b"]:
        table.add_column(name.replace("block ", "b"), justify="right")
    for name, row in zip(data["layers_a"], data["cka"], strict=True):
        table.add_row(name, *(f"{v:.2f}" for v in row))
    console.print(table)
    console.print(f"wrote {data['png']}", highlight=False)


@analyze.command("permutation")
@click.option(
    "--dataset", default="digits", show_default=True, help="Data set with train and test splits."
)
@click.option(
    "--model",
    default="mixer_t2_8",
    show_default=True,
    help="Registered Mixer, trained from scratch.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Override a Mixer config field, e.g. --set hidden_dim=64 (repeatable).",
)
@click.option("--epochs", type=POSITIVE_INT, default=30, show_default=True)
@click.option("--batch-size", type=POSITIVE_INT, default=64, show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, default=2e-3, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--cnn-width", type=POSITIVE_INT, default=32, show_default=True)
@click.option(
    "--limit",
    type=POSITIVE_INT,
    default=None,
    help="Use at most this many train and test images (quick runs).",
)
@click.option(
    "--exact-epochs",
    type=NON_NEGATIVE_INT,
    default=1,
    show_default=True,
    help="Epochs of the float64 exact check (0 skips it).",
)
@out_dir_option("analyze", "Writes permutation.json and permutation.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def analyze_permutation(dataset: str, model: str, sets: tuple[str, ...], epochs: int,
                        batch_size: int, lr: float, seed: int, cnn_width: int,
                        limit: int | None, exact_epochs: int, out_dir: str,
                        as_json: bool) -> None:  # fmt: skip
    """Order invariance: Mixer and a CNN trained on original, patch+pixel- and globally-permuted images.

    Also checks exactly (float64) that the Mixer trained on permuted images from the folded
    initialisation is the plain Mixer with its weights permuted.
    """
    import yaml

    from .analysis.runs import permutation_run

    overrides = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected FIELD=VALUE, got {item!r}", param_hint="--set")
        overrides[key.strip()] = yaml.safe_load(value)
    data = permutation_run(
        dataset, out_dir, model, overrides, epochs=epochs, seed=seed, cnn_width=cnn_width,
        exact_epochs=exact_epochs, batch_size=batch_size, lr=lr, limit=limit,
    )  # fmt: skip
    if as_json:
        print_json(data)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"test top-1 on {data['dataset']}")
    table.add_column("model")
    variants = list(next(iter(data["accuracy"].values())))
    for v in variants:
        table.add_column(v, justify="right")
    for name, row in data["accuracy"].items():
        table.add_row(name, *(f"{100 * row[v]:.2f}%" for v in variants))
    console.print(table)
    exact = data["exact"]
    if exact:
        console.print(
            f"exact check ({exact['epochs']} epoch(s), float64): folded Mixer on permuted images vs "
            f"plain Mixer: max |weight diff| {exact['max_abs_weight_diff']:.1e}, max |logit diff| "
            f"{exact['max_abs_logit_diff']:.1e}, same predictions: {exact['same_predictions']}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    console.print(f"wrote {data['png']}", highlight=False)


@cli.command()
@click.option("--model", "model_name", default=None, help="Registered model name (see `models`).")
@click.option("--checkpoint", default=None, help="Or any checkpoint `load_model` reads.")
@click.option("--batch-size", type=POSITIVE_INT, default=32, show_default=True)
@click.option(
    "--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu, cuda or cuda:N.",
    callback=_checked_device,
)
@click.option(
    "--mode", type=click.Choice(["infer", "train", "both"]), default="both", show_default=True
)
@click.option(
    "--compile/--no-compile",
    "compile_model",
    default=False,
    show_default=True,
    help="torch.compile (inductor) the models.",
)
@click.option(
    "--compile-mode",
    default=None,
    help="torch.compile mode: default, max-autotune, reduce-overhead (CUDA graphs).",
)
@click.option(
    "--freeze/--no-freeze",
    default=True,
    show_default=True,
    help="Compiled inference: inductor freezing (constant, prepacked weights).",
)
@click.option(
    "--infer-autocast",
    is_flag=True,
    help="bf16/fp16 inference under autocast with fp32 weights (default: cast weights).",
)
@click.option("--compare", is_flag=True, help="Also run the plain implementation (and timm).")
@click.option("--grad-checkpointing", is_flag=True, help="Activation checkpointing in training.")
@click.option(
    "--latency/--no-latency", default=True, show_default=True, help="Batch-1 latency percentiles."
)
@click.option("--threads", type=POSITIVE_INT, default=None, help="CPU threads (default: torch's).")
@click.option(
    "--warmup", type=NON_NEGATIVE_INT, default=2, show_default=True, help="Warm-up steps."
)
@click.option(
    "--repeats", type=POSITIVE_INT, default=5, show_default=True, help="Minimum timed steps."
)
@click.option(
    "--min-time",
    type=NON_NEGATIVE_FLOAT,
    default=3.0,
    show_default=True,
    help="Minimum timed seconds per implementation.",
)
@click.option(
    "--peak/--no-peak",
    default=True,
    show_default=True,
    help="Measure the matmul peak (needed for MFU).",
)
@click.option(
    "--gelu",
    type=click.Choice(["tanh", "none"]),
    default=None,
    help="Override the model's GELU (a speed experiment: changes the outputs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=lambda ctx, param, value: _regular_file_or_new(value, "--out"),
    help="Write JSON here too.",
)
def bench(model_name: str | None, checkpoint: str | None, batch_size: int, dtype: str, device: str,
          mode: str, compile_model: bool, compile_mode: str | None, freeze: bool,
          infer_autocast: bool, compare: bool, grad_checkpointing: bool, latency: bool,
          threads: int | None, warmup: int, repeats: int, min_time: float, peak: bool,
          gelu: str | None, as_json: bool, out: Path | None) -> None:  # fmt: skip
    """Throughput, MFU, batch-1 latency and memory; --compare runs a plain Mixer alongside.

    MFU is against a same-dtype matmul measured on the same device in the same run.
    """
    from .errors import ConfigError
    from .evaluate.bench import BenchOptions, benchmark
    from .fileio import atomic_write_text

    if (model_name is None) == (checkpoint is None):
        raise ConfigError("give exactly one of --model NAME or --checkpoint PATH")
    options = BenchOptions(
        batch_size=batch_size, dtype=dtype, device=device, mode=mode, compile=compile_model,
        compile_mode=compile_mode, freeze=freeze, infer_autocast=infer_autocast,
        compare=compare, grad_checkpointing=grad_checkpointing, latency=latency,
        threads=threads, warmup=warmup, repeats=repeats, min_time_s=min_time, peak=peak,
        gelu=gelu,
    )  # fmt: skip
    result = benchmark(model_name or checkpoint, options)
    if out is not None:
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    if as_json:
        print_json(result)
        return
    _print_bench(result)
    if out is not None:
        console.print(f"wrote {out}")


def _print_bench(result: dict[str, Any]) -> None:
    machine, peak = result["machine"], result.get("matmul_peak")
    opts = result["options"]
    console.print(
        f"{result['model']}, batch {opts['batch_size']}, {opts['dtype']}, {opts['device']}"
        f"{', compiled' if opts['compile'] else ''} -- {machine['cpu']}, "
        f"{machine['torch_threads']} threads, torch {machine['torch']}",
        highlight=False,
    )
    unit = "/core" if opts["device"] == "cpu" else "/GPU"
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("impl", "mode", "ms/step ±", "img/s", unit, "TFLOP/s", "MFU", "MB", "act/img"):
        table.add_column(column, justify="left" if column in ("impl", "mode") else "right",
                         no_wrap=True)  # fmt: skip
    for r in result["results"]:
        saved = r.get("saved_activations_mb_per_image")
        table.add_row(
            r["impl"], r["mode"],
            f"{r['step_ms']['median']:.1f} ±{100 * r['step_ms']['spread']:.0f}%",
            f"{r['images_per_s']:.1f}",
            f"{r.get('images_per_s_per_core', r.get('images_per_s_per_gpu')):.1f}",
            f"{r['tflops']:.3f}", "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
            f"{r['peak_memory_mb']:.0f}", "" if saved is None else f"{saved:.2f}",
        )  # fmt: skip
    Console(width=max(console.width, 100), markup=False, highlight=False).print(table)
    for r in result["results"]:
        if "latency_ms_batch1" in r:
            lat = r["latency_ms_batch1"]
            console.print(
                f"{r['impl']} batch-1 latency: p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, "
                f"p99 {lat['p99']:.2f} ms"
            )
    if peak:
        console.print(
            f"matmul peak ({peak['dtype']}, {peak['size']}x{peak['size']}): "
            f"{peak['tflops']:.3f} TFLOP/s; model {result['gflops_per_image']:.2f} GFLOP/image "
            "forward, training step counted as 3x"
        )
    cpu_ratios = result.get("ratios_cpu_time", {})
    for mode, ratios in result["ratios"].items():
        for name, value in ratios.items():
            by_cpu = cpu_ratios.get(mode, {}).get(name)
            cpu_note = f" ({by_cpu:.2f}x by process CPU time)" if by_cpu else ""
            console.print(
                f"{mode}: {name.replace('_vs_', ' / ')} = {value:.2f}x images/s{cpu_note}"
            )
    for note in result.get("notes", []):
        console.print(note)
    console.print(
        "±: (p90 - p10) / median of the step times. MB: peak memory of one step "
        "(CUDA allocator; CPU resident set, approximate). act/img: MB of activations saved "
        "for backward per image."
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mlpmixer`` script and ``python -m mlpmixer``."""
    cli.main(args=argv, prog_name="mlpmixer")


__all__ = ["cli", "main"]
