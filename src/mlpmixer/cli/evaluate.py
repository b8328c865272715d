"""``mlpmixer eval``, ``predict`` and ``fewshot``: a trained model measured on data."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..choices import INTERPOLATIONS
from ..errors import EXIT_BAD_INPUT, EXIT_RUN_FAILED
from ..fileio import atomic_write_json, atomic_write_text
from ..progress import printable
from .options import (
    FRACTION,
    POSITIVE_INT,
    checkpoint_option,
    device_option,
    int_list,
    precision_option,
    workers_option,
)
from .out_dir import beside_checkpoint, beside_checkpoint_option, slug
from .printing import console, err_console, print_json
from .root import cli


def _out(out: str | None, checkpoint: str, folder: str) -> Path | None:
    """``--out``, else the default place next to the checkpoint (None: nothing to write)."""
    return Path(out) if out is not None else beside_checkpoint(checkpoint, folder)


def floats(value: str | None, name: str) -> tuple[float, ...] | None:
    """``--mean``/``--std``: ``0.5,0.5,0.5`` as numbers; anything else is a usage error."""
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers, got {value!r}", param_hint=name
        ) from None


def _not_written(what: str) -> None:
    err_console.print(
        f"{what} not written: the checkpoint is not a local path; give --out DIR to keep it",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


@cli.command("eval")
@checkpoint_option
@click.option(
    "--dataset", required=True, help="digits, mnist5k, mnist, cifar10, ..., hf:NAME or a directory."
)
@click.option("--split", default="test", show_default=True, help="train or test (val).")
@click.option("--batch-size", type=POSITIVE_INT, default=256, show_default=True)
@device_option()
@precision_option()
@workers_option()
@click.option("--mean", default=None, help="Override the checkpoint's mean, e.g. 0.5,0.5,0.5.")
@click.option("--std", default=None, help="Override the checkpoint's std.")
@click.option("--crop-pct", type=FRACTION, default=None, help="Override the checkpoint's crop_pct.")
@click.option("--interpolation", default=None, help=f"Override: {', '.join(INTERPOLATIONS)}.")
@click.option("--root", default=None, help="Where named data sets live (default $MLPMIXER_DATA).")
@beside_checkpoint_option("Writes eval.json, confusion.png and confused_pairs.txt here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate_command(checkpoint: str, dataset: str, split: str, batch_size: int, device: str,
                     precision: str, workers: int, mean: str | None, std: str | None,
                     crop_pct: float | None, interpolation: str | None, root: str | None,
                     out: str | None, as_json: bool) -> None:  # fmt: skip
    """Top-1, top-5, per-class accuracy, loss and a confusion matrix on a data set split.

    Images are prepared with the checkpoint's config (size, channels, crop, interpolation,
    mean, std) unless overridden. Example: mlpmixer eval --checkpoint runs/digits/model --dataset digits
    """
    from ..devices import precision_context
    from ..evaluate import evaluate_checkpoint, save_confusion_png
    from ..evaluate.confusion import confused_pairs_text, top_confused
    from ..layout import checkpoint_label

    with precision_context(device, precision):
        result, _ = evaluate_checkpoint(
            checkpoint, dataset, split, batch_size, num_workers=workers, device=device,
            mean=floats(mean, "--mean"), std=floats(std, "--std"), crop_pct=crop_pct,
            interpolation=interpolation, root=root,
        )  # fmt: skip
    where = _out(out, checkpoint, f"eval-{slug(dataset)}-{split}")
    data = {"checkpoint": checkpoint, "dataset": dataset, "split": split, **result.to_dict()}
    data["precision"] = precision
    data["top_confused"] = top_confused(result.confusion, result.class_names)
    if where is not None:
        atomic_write_text(where / "confused_pairs.txt", confused_pairs_text(data["top_confused"]))
        data["png"] = str(where / "confusion.png")
        title = (
            f"{checkpoint_label(checkpoint)} on {dataset} ({split}): top-1 {100 * result.top1:.2f}%"
        )
        save_confusion_png(where / "confusion.png", result.confusion, result.class_names, title)
        atomic_write_json(where / "eval.json", data)
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
    else:  # too many classes for a table (and the picture): the most frequent mistakes
        for line in confused_pairs_text(data["top_confused"][:10]).splitlines():
            console.print(line, highlight=False)
    if where is None:
        _not_written("eval.json")
    else:
        console.print(f"wrote {where / 'eval.json'} and {where / 'confusion.png'}", highlight=False)


@cli.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@checkpoint_option
@click.option("--top-k", type=POSITIVE_INT, default=5, show_default=True)
@click.option("--batch-size", type=POSITIVE_INT, default=32, show_default=True)
@device_option()
@precision_option()
@workers_option()
@beside_checkpoint_option("Writes predictions.json here.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def predict(images: tuple[str, ...], checkpoint: str, top_k: int, batch_size: int, device: str,
            precision: str, workers: int, out: str | None, as_json: bool) -> None:  # fmt: skip
    """Top-k classes with probabilities for image files (directories are searched).

    Any image PIL reads (JPEG, PNG, WebP, grayscale, RGBA, 16-bit); resized and cropped as
    the checkpoint's config says. Unreadable files are reported by name, the others are
    still predicted, and the exit status is then 1 (2 when no image could be read).
    """
    from ..checkpoints import load_model
    from ..devices import precision_context
    from ..evaluate import predict_files
    from ..evaluate.predict import NOT_FINITE

    model = load_model(checkpoint)
    with precision_context(device, precision):
        report = predict_files(model, list(images), top_k, batch_size, device, num_workers=workers)
    data = {"checkpoint": checkpoint, **report.to_dict()}
    where = _out(out, checkpoint, "predict")
    if where is not None:
        atomic_write_json(where / "predictions.json", data)
    elif not as_json:
        _not_written("predictions.json")
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
    if not report.ok:  # no image could be read at all: bad input (2); otherwise 1
        model_failed = any(f["error"] == NOT_FINITE for f in report.failures)
        unreadable = not report.predictions and not model_failed
        raise click.exceptions.Exit(EXIT_BAD_INPUT if unreadable else EXIT_RUN_FAILED)


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
@device_option()
@precision_option()
@workers_option()
@beside_checkpoint_option("Writes fewshot.json here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fewshot(checkpoint: str, dataset: str, shots: str, seeds: int, heldout_per_class: int,
            batch_size: int, device: str, precision: str, workers: int, out: str | None,
            as_json: bool) -> None:  # fmt: skip
    """Few-shot linear probes on frozen features, as in the paper.

    Closed-form l2-regularised least squares onto {-1, +1} one-vs-all targets; the
    regulariser is picked on held-out training images; test accuracy averaged over seeds.
    """
    from ..devices import precision_context
    from ..evaluate.fewshot import fewshot_checkpoint

    with precision_context(device, precision):
        result = fewshot_checkpoint(
            checkpoint, dataset, int_list(shots, "--shots"), list(range(seeds)), batch_size,
            device, num_workers=workers, heldout_per_class=heldout_per_class,
        )  # fmt: skip
    data = {"checkpoint": checkpoint, "dataset": dataset, **result.to_dict()}
    where = _out(out, checkpoint, f"fewshot-{slug(dataset)}")
    if where is not None:
        atomic_write_json(where / "fewshot.json", data)
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
    if where is None:
        _not_written("fewshot.json")
    else:
        console.print(f"wrote {where / 'fewshot.json'}", highlight=False)
