"""``mlpmixer eval``, ``predict`` and ``fewshot``: a trained model measured on data."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..errors import EXIT_BAD_INPUT, EXIT_RUN_FAILED
from ..fileio import atomic_write_json
from .app import (
    FRACTION,
    POSITIVE_INT,
    checked_device,
    checkpoint_option,
    cli,
    console,
    err_console,
    floats,
    int_list,
    out_dir_option,
    print_json,
    printable,
)


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
    callback=checked_device,
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
    from ..evaluate import evaluate_checkpoint, save_confusion_png
    from ..layout import checkpoint_label

    result, _ = evaluate_checkpoint(
        checkpoint, dataset, split, batch_size, device=device, mean=floats(mean, "--mean"),
        std=floats(std, "--std"), crop_pct=crop_pct, interpolation=interpolation, root=root,
    )  # fmt: skip
    out = Path(out_dir)
    data = {"checkpoint": checkpoint, "dataset": dataset, "split": split, **result.to_dict()}
    data["png"] = str(out / "confusion.png")
    title = f"{checkpoint_label(checkpoint)} on {dataset} ({split}): top-1 {100 * result.top1:.2f}%"
    save_confusion_png(out / "confusion.png", result.confusion, result.class_names, title)
    atomic_write_json(out / "eval.json", data)
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
@click.option("--device", default="cpu", show_default=True, callback=checked_device)
@out_dir_option("predict", "Writes predictions.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def predict(images: tuple[str, ...], checkpoint: str, top_k: int, batch_size: int, device: str,
            out_dir: str, as_json: bool) -> None:  # fmt: skip
    """Top-k classes with probabilities for image files (directories are searched).

    Any image PIL reads (JPEG, PNG, WebP, grayscale, RGBA, 16-bit); resized and cropped as
    the checkpoint's config says. Unreadable files are reported by name, the others are
    still predicted, and the exit status is then 1 (2 when no image could be read).
    """
    from ..checkpoints import load_model
    from ..evaluate import predict_files
    from ..evaluate.predict import NOT_FINITE

    report = predict_files(load_model(checkpoint), list(images), top_k, batch_size, device)
    data = {"checkpoint": checkpoint, **report.to_dict()}
    atomic_write_json(Path(out_dir) / "predictions.json", data)
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
@click.option("--device", default="cpu", show_default=True, callback=checked_device)
@out_dir_option("fewshot", "Writes fewshot.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fewshot(checkpoint: str, dataset: str, shots: str, seeds: int, heldout_per_class: int,
            batch_size: int, device: str, out_dir: str, as_json: bool) -> None:  # fmt: skip
    """Few-shot linear probes on frozen features, as in the paper.

    Closed-form l2-regularised least squares onto {-1, +1} one-vs-all targets; the
    regulariser is picked on held-out training images; test accuracy averaged over seeds.
    """
    from ..evaluate.fewshot import fewshot_checkpoint

    result = fewshot_checkpoint(
        checkpoint, dataset, int_list(shots, "--shots"), list(range(seeds)), batch_size,
        device, heldout_per_class=heldout_per_class,
    )  # fmt: skip
    data = {"checkpoint": checkpoint, "dataset": dataset, **result.to_dict()}
    atomic_write_json(Path(out_dir) / "fewshot.json", data)
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
