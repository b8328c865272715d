"""``mlpmixer analyze tokens|cka|permutation``: the paper's analyses."""

from __future__ import annotations

from typing import Any

import click
from rich import box
from rich.table import Table

from .dialect import deprecated
from .options import (
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    checkpoint_option,
    device_option,
    int_list,
    threads_option,
)
from .out_dir import beside_checkpoint_option, out_option, product_dir
from .printing import console, err_console, print_json
from .root import cli


@cli.group()
def analyze() -> None:
    """The paper's analyses, each writing a PNG and a JSON file.

    \b
    tokens       token-mixing weights drawn on the patch grid
    cka          linear CKA between all layers (of one or two checkpoints)
    permutation  order invariance: a model (any family) vs a CNN on permuted pixels
    """


@analyze.command("tokens")
@checkpoint_option
@click.option("--blocks", default="1,2,3", show_default=True, help="Blocks to draw (1 = first).")
@click.option("--units", type=POSITIVE_INT, default=32, show_default=True,
              help="Hidden units drawn per block.")  # fmt: skip
@beside_checkpoint_option("Writes tokens.json and tokens.png.", "analyze-tokens", "analyze-tokens")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def analyze_tokens(
    checkpoint: str, blocks: str, units: int, out: str | None, as_json: bool
) -> None:
    """Token-mixing hidden units as images on the patch grid (paper, Fig. 5).

    Units are paired with their most opposite unit and the pairs sorted by spatial frequency.
    """
    from ..analysis.runs import token_mixing_run

    where = product_dir(out, checkpoint, "analyze-tokens")
    data = token_mixing_run(checkpoint, where, int_list(blocks, "--blocks"), units)
    most = max(b["num_units"] for b in data["blocks"])
    if units > most:  # the figure shows what there is: say so rather than ignore the value
        err_console.print(
            f"warning: --units {units}: the blocks have {most} units; drawing all {most}"
        )
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
@device_option()
@beside_checkpoint_option("Writes cka.json and cka.png.", "analyze-cka", "analyze-cka")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def analyze_cka(checkpoint: str, checkpoint_b: str | None, dataset: str | None,
                image_paths: tuple[str, ...], num_images: int, batch_size: int, device: str,
                out: str | None, as_json: bool) -> None:  # fmt: skip
    """Linear CKA between the stem and every block's output, as a heatmap."""
    from ..analysis.runs import cka_run

    where = product_dir(out, checkpoint, "analyze-cka")
    data = cka_run(
        checkpoint,
        where,
        dataset,
        list(image_paths),
        checkpoint_b,
        num_images,
        batch_size,
        device=device,
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


MODEL_OVERRIDES = "model.overrides."


def parse_model_sets(sets: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``--set model.overrides.FIELD=VALUE`` (train's spelling) as (FIELD, value) pairs; the
    old bare ``FIELD=VALUE`` still works, with a deprecation warning."""
    from ..train.config import parse_assignment

    pairs = []
    for item in sets:
        if "=" not in item:
            raise click.BadParameter(
                f"expected {MODEL_OVERRIDES}FIELD=VALUE, got {item!r}", param_hint="--set"
            )
        # the one --set reader: bounded YAML (no aliases, limited nesting), errors name the key
        key, value = parse_assignment(item)
        if key.startswith(MODEL_OVERRIDES):
            key = key.removeprefix(MODEL_OVERRIDES)
        elif "." in key:
            raise click.BadParameter(
                f"{key}: only model fields can be set here ({MODEL_OVERRIDES}FIELD=VALUE)",
                param_hint="--set",
            )
        else:
            deprecated(f"--set {key}=...", f"--set {MODEL_OVERRIDES}{key}=...")
        pairs.append((key, value))
    return pairs


@analyze.command("permutation")
@click.option(
    "--dataset", default="digits", show_default=True, help="Data set with train and test splits."
)
@click.option(
    "--model",
    default="mixer_t2_8",
    show_default=True,
    help="Registered model (any family), trained from scratch.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="model.overrides.FIELD=VALUE",
    help="Override a model config field as train does, e.g. --set model.overrides.hidden_dim=64 "
    "(repeatable).",
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
@device_option()
@threads_option()
@out_option("analyze", "Writes permutation.json and permutation.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def analyze_permutation(dataset: str, model: str, sets: tuple[str, ...], epochs: int,
                        batch_size: int, lr: float, seed: int, cnn_width: int,
                        limit: int | None, exact_epochs: int, device: str,
                        threads: int | None, out: str, as_json: bool) -> None:  # fmt: skip
    """Order invariance: a model and a CNN trained on original, patch+pixel- and globally-permuted images.

    Any family; the patches are the model's (a pyramid's: its first-level stride). For a
    Mixer or gMixer it also checks exactly (float64) that the model trained on permuted images
    from the folded initialisation is the plain one with its weights permuted.
    """
    from ..analysis.runs import permutation_run
    from ..devices import cpu_threads

    overrides = dict(parse_model_sets(sets))
    with cpu_threads(threads):
        data = permutation_run(
            dataset, out, model, overrides, epochs=epochs, seed=seed, cnn_width=cnn_width,
            exact_epochs=exact_epochs, batch_size=batch_size, lr=lr, limit=limit, device=device,
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
    elif data["settings"].get("exact"):
        console.print(f"exact check {data['settings']['exact']}", highlight=False)
    console.print(f"wrote {data['png']}", highlight=False)
