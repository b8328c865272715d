"""``mlpmixer train`` and ``finetune``: a config from file, preset, flags and ``--set``, then a run."""

from __future__ import annotations

from typing import Any

import click
from rich import box
from rich.table import Table

from ..choices import PRECISIONS
from ..errors import ConfigError
from ..layout import (
    CHECKPOINT_DIR,
    CURVES_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    MODEL_DIR,
    RUN_CONFIG_FILE,
    SKIPPED_FILE,
    SUMMARY_FILE,
)
from ..progress import printable
from .options import (
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    checked_device,
    img_size_option,
    threads_option,
)
from .out_dir import dir_or_new
from .printing import console, print_json
from .root import cli


def flag_overrides(**flags: Any) -> list[tuple[str, Any]]:
    """Plain CLI flags (``epochs=3``) as typed overrides (``("train.epochs", 3)``): click has
    typed and checked them, so they reach the config as values, never as text to re-read."""
    keys = {
        "model": "model.name",
        "dataset": "data.dataset",
        "epochs": "train.epochs",
        "steps": "train.steps",
        "batch_size": "train.batch_size",
        "lr": "optim.lr",
        "seed": "train.seed",
        "out": "run.out",
        "device": "train.device",
        "precision": "train.precision",
        "img_size": "model.img_size",
        "skip_bad_images": "data.skip_bad_images",
        "workers": "data.num_workers",
        "threads": "train.threads",
    }
    unknown = sorted(set(flags) - set(keys))
    if unknown:
        raise ConfigError(f"unknown flag(s) {unknown}")
    # an absent on/off flag (False) leaves the config file's value alone; `is` because
    # 0 == False, and a 0 (--epochs 0, --seed 0) must reach the config to be used or refused
    return [(keys[k], v) for k, v in flags.items() if v is not None and v is not False]


def _train_options(func: Any) -> Any:
    """Flags shared by ``train`` and ``finetune`` (each becomes a ``--set`` override)."""
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML config (default: train: the data set's recipe, configs/<data set>.yaml; finetune: configs/finetune.yaml)."),
        click.option("--epochs", type=POSITIVE_INT, default=None, help="Epochs (train.epochs)."),
        click.option("--steps", type=POSITIVE_INT, default=None, help="Total optimizer steps (train.steps; overrides epochs)."),
        click.option("--batch-size", type=POSITIVE_INT, default=None, help="Global batch size, over all processes."),
        click.option("--lr", type=POSITIVE_FLOAT, default=None, help="Peak learning rate (optim.lr)."),
        click.option("--seed", type=SEED, default=None, help="Seed of initialisation, data order and augmentation."),
        click.option("--device", default=None, callback=checked_device,
                     help="auto (the default: cuda when available, else cpu), cpu, cuda, cuda:N (train.device)."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                     help="bf16 autocast (CPU/GPU) or fp16 with loss scaling (GPU)."),
        click.option("--out", callback=dir_or_new, default=None,
                     help="Run directory (default runs/<dataset>-<model>-<time>)."),
        img_size_option("Training resolution, N or HxW (default: the recipe's, or the data's)."),
        click.option("--workers", type=click.IntRange(min=0), default=None,
                     help="Data-loading processes (data.num_workers; default: 0 for in-memory "
                     "data, else this process's CPUs minus one, at most 32)."),
        threads_option("measured at the start of a CPU run: 1 or all cores, whichever "
                       "trains a step of this model faster, and printed; train.threads"),
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
        table.add_row(key, printable(str(value)))  # a data set folder's name, for one
    console.print(table)
    run_dir = result.run_dir
    console.print(
        f"wrote {run_dir}/: {RUN_CONFIG_FILE}, {METRICS_FILE}, {SUMMARY_FILE}, {CURVES_FILE}, "
        f"{MODEL_DIR}/ (load with mlpmixer.load_model('{run_dir}/{MODEL_DIR}')), "
        f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.get("skipped_images"):
        console.print(
            f"skipped {summary['skipped_images']} unreadable image(s), listed in "
            f"{run_dir}/{SKIPPED_FILE}",
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
    help="digits (default), mnist5k, mnist, fashion-mnist, cifar10, cifar100, hf:NAME, a directory, "
    "or shards (mlpmixer data pack OUT: the folder or its URL).",
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
    from ..train import load_config
    from ..train import train as run_training

    overrides = [*flag_overrides(**flags), *sets]  # --set last: it wins over every flag
    if resume:
        if config_file:
            raise click.UsageError("--resume takes the config from RUN_DIR; drop --config")
        result = run_training(resume=resume, dataset=dataset, model=model, overrides=overrides)
    else:  # the library's own path: train(None) is the digits recipe, as here
        base = load_config(config_file) if config_file else None
        result = run_training(base, dataset=dataset, model=model, overrides=overrides)
    _report_run(result, as_json)


@cli.command()
@click.option(
    "--checkpoint",
    "--from",
    "checkpoint",
    required=True,
    metavar="CHECKPOINT",
    help="Pre-trained weights: run directory, model/, .npz, timm file or hub id (--from: the same).",
)
@click.option("--dataset", required=True, help="Data set to fine-tune on (as for train).")
@_train_options
def finetune(checkpoint: str, dataset: str, config_file: str | None,
             sets: tuple[str, ...], as_json: bool, img_size: Any = None, **flags: Any) -> None:  # fmt: skip
    """Fine-tune a checkpoint with the paper's recipe and a fresh head.

    Default config (without --config): configs/finetune.yaml, i.e. SGD momentum 0.9, lr
    0.003, batch 512, 10k steps, cosine after 500 warmup steps, clipping at 1, no weight
    decay, inception crop + flips; digit data sets (digits, mnist5k, mnist, fashion-mnist) keep
    their own recipe's augmentation instead. A class folder gets the batch size (at most a
    quarter of its training images) and steps (at most 200 epochs) sized from its data, said
    in one line. A warmup longer than 20% of the run (e.g. with --steps 200) is scaled to 5% of
    it, with a notice.

    Example: mlpmixer finetune --checkpoint hf-hub:timm/mixer_b16_224.goog_in21k --dataset cifar10 --img-size 448
    """
    from ..train import finetune_config, load_config
    from ..train import train as run_training

    base = load_config(config_file) if config_file else None
    overrides = [*flag_overrides(**flags), *sets]
    config = finetune_config(checkpoint, dataset, img_size, base, overrides)
    _report_run(run_training(config), as_json)
