"""The pictures read (issue 18 item 8): a colour scale on the token-mixing figure, short
labels and the data in the CKA title, permutation bars from 0 with the legend beside them,
a learning-rate panel in curves.png, titled with the run, and the top confused pairs."""

from __future__ import annotations

import numpy as np

from mlpmixer.analysis.figures import cka_figure, order_study_figure, token_mixing_figure
from mlpmixer.analysis.runs import _short_name
from mlpmixer.analysis.token_mixing import BlockUnits
from mlpmixer.evaluate.confusion import confused_pairs_text, top_confused


def test_token_mixing_figure_has_a_colour_scale():
    rng = np.random.default_rng(0)
    blocks = [
        BlockUnits(block=b, num_units=8, grid=(4, 4), order=list(range(8)),
                   pair_correlation=[], frequency=[], spread=[], images=rng.normal(size=(8, 4, 4)))
        for b in range(2)
    ]  # fmt: skip
    fig = token_mixing_figure(blocks)
    assert len(fig.axes) == 3  # two blocks and the colour bar
    assert "largest |weight|" in fig.axes[-1].get_ylabel()


def test_cka_labels_are_short_and_the_cells_readable():
    assert _short_name("runs/mnist5k-mixer/model") == "mnist5k-mixer"
    assert len(_short_name("/very/long/path/" + "x" * 80 + ".safetensors")) <= 24
    fig = cka_figure(np.eye(3), ["stem", "block 1", "block 2"], ["stem", "block 1", "block 2"],
                     "m", "m", title="Linear CKA, 256 digits test images")  # fmt: skip
    ax = fig.axes[0]
    assert ax.get_xlabel() == "layer of m" and "digits" in ax.get_title()
    assert min(t.get_fontsize() for t in ax.texts) >= 9


def test_permutation_bars_start_at_zero_and_the_legend_stays_off_them():
    accuracy = {"mixer": {"original": 0.9, "global": 0.8}, "cnn": {"original": 0.95}}  # partial
    pictures = [np.zeros((4, 4))] * 2
    fig = order_study_figure(accuracy, pictures, ("original", "global"))
    ax = fig.axes[-1]
    assert ax.get_ylim()[0] == 0
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, not over the bars
    assert len(ax.patches) == 3  # the missing bar of a stopped study is left out


def test_curves_have_a_learning_rate_panel(tmp_path):
    from mlpmixer.train.logs import plot_curves

    records = [{"epoch": e, "train_loss": 1 / e, "test_top1": 0.5} for e in (1, 2, 3)]
    lrs = [0.1 * (s + 1) / 3 for s in range(3)] + [0.1 * (1 - s / 6) for s in range(6)]
    path = plot_curves(records, tmp_path / "curves.png", "run-x: fine-tune of m on digits",
                       lr=lrs, steps_per_epoch=3)  # fmt: skip
    from PIL import Image

    with Image.open(path) as image:
        assert image.width >= 1400  # three panels (two were 1000 px)


def test_top_confused_pairs_are_the_largest_off_diagonal_counts():
    confusion = [[8, 2, 0], [5, 3, 2], [0, 1, 9]]
    pairs = top_confused(confusion, ["a", "b", "c"], k=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("b", "a", 5),
        ("a", "b", 2),
        ("b", "c", 2),
    ]
    assert pairs[0]["share_of_true_class"] == 0.5
    assert "    5  50.0%  b -> a" in confused_pairs_text(pairs)
    assert top_confused(np.eye(4, dtype=int) * 3, list("abcd")) == []
