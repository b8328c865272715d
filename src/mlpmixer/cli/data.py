"""``mlpmixer data``: prepare data sets for training (``data pack``: WebDataset shards)."""

from __future__ import annotations

import click

from .options import SEED
from .printing import console, print_json
from .root import cli


@cli.group()
def data() -> None:
    """Prepare data sets (shards for streaming training)."""


@data.command()
@click.argument("source")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--samples-per-shard",
    type=click.IntRange(1),
    default=1024,
    show_default=True,
    help="Records per tar shard (ImageNet: ~110 MB shards at 1024).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Held-out share of a DIR/<class>/* tree without a val/ folder.",
)
@click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seeds the held-out split and the order records are packed in.",
)
@click.option(
    "--train-split", default=None, help="hf:NAME: the split to pack as train (default train)."
)
@click.option(
    "--val-split",
    default=None,
    help="hf:NAME: the split to pack as test (default validation, else test).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the index as JSON.")
def pack(source: str, out: str, samples_per_shard: int, val_fraction: float, seed: int,
         train_split: str | None, val_split: str | None, as_json: bool) -> None:  # fmt: skip
    """Write SOURCE (a class-folder tree or hf:NAME[:CONFIG]) as tar shards + OUT/index.json.

    Train on them with `mlpmixer train --dataset OUT` (or the URL OUT is copied to:
    https://, s3://, gs://). Each record keeps the source image's bytes; the index holds the
    class names and each shard's count, size and SHA-256.
    """
    from ..data.pack import pack_shards

    def progress(message: str) -> None:
        if not as_json:
            console.print(message, highlight=False)

    index = pack_shards(
        source, out, samples_per_shard=samples_per_shard, val_fraction=val_fraction, seed=seed,
        train_split=train_split, val_split=val_split, progress=progress,
    )  # fmt: skip
    if as_json:
        print_json(index)
        return
    for split, entries in index["splits"].items():
        count = sum(e["count"] for e in entries)
        size = sum(e["bytes"] for e in entries) / 1e6
        console.print(
            f"{split}: {count} samples, {len(entries)} shards, {size:.1f} MB", highlight=False
        )
    console.print(f"{len(index['class_names'])} classes; index: {out}/index.json", highlight=False)
