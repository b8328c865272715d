"""What a run writes while it trains: JSONL metrics, TensorBoard events, progress, curves.

* ``metrics.jsonl``: one JSON object per evaluated epoch (always);
* ``tensorboard/``: event files when the ``tensorboard`` package is installed;
* progress: one bar (`mlpmixer.progress.Bar`, rich's), updated in place, when stderr is a
  terminal or in a Jupyter notebook with ipywidgets; otherwise log lines
  (step, epoch, loss, rate, ETA) every ``train.log_every_steps`` steps and at least every
  ~10 seconds, even inside one long step;
* ``curves.png``: loss and top-1 against epochs (matplotlib, Agg backend).

Only the main process (rank 0) creates these.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ..layout import METRICS_FILE
from ..progress import PROGRESS, Bar, Ticker, in_notebook, notebook_widgets

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends one JSON line per record to ``metrics.jsonl``, flushed at once."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_FILE

    def truncate_after(self, epochs_done: int) -> None:
        """Drop lines of epochs after ``epochs_done`` (written before a crash, redone on resume)."""
        if not self.path.is_file():
            return
        kept = [
            line for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("epoch", 0) <= epochs_done
        ]  # fmt: skip
        self.path.write_text("".join(line + "\n" for line in kept))

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class TensorBoardLog:
    """Scalars to ``RUN_DIR/tensorboard`` if tensorboard is installed; silent otherwise."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the tensorboard package is an optional extra
            return
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, values: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, int | float) and key not in ("epoch", "step"):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress:
    """One `Bar` for the whole run on a terminal or in a notebook (epoch, loss, lr and the
    last test top-1 in its postfix, updated in place); otherwise progress lines logged at INFO on
    ``mlpmixer.train.logs`` (the CLI shows them on stderr): a `Ticker` line (step, epoch,
    loss, lr, rate, ETA) every ``log_every`` steps and at least every ``interval`` seconds,
    and one line per epoch."""

    def __init__(
        self, mode: str, log_every: int, stream: TextIO | None = None, interval: float = 10.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.notebook = mode == "auto" and stream is None and in_notebook() and notebook_widgets()
        if mode == "auto":
            mode = "bar" if self.stream.isatty() or self.notebook else "log"
        self.mode, self.log_every, self.interval = mode, log_every, interval
        self.bar: Bar | None = None
        self.ticker: Ticker | None = None
        self.epoch, self.epochs, self.steps_in_epoch = 0, 0, 0
        self.postfix: dict[str, str] = {}
        self.start = time.perf_counter()

    def start_run(self, total_steps: int, done: int, epochs: int) -> None:
        self.epochs = epochs
        if self.mode == "bar":
            self.bar = Bar(total_steps, self.stream, done=done, notebook=self.notebook)
        elif self.mode == "log":
            self.ticker = Ticker(log, "training", total_steps, interval=self.interval, done=done)
            self.ticker.__enter__()

    def start_epoch(self, epoch: int, steps: int) -> None:
        self.epoch, self.steps_in_epoch = epoch, steps
        if self.bar is not None:
            self.bar.describe(f"epoch {epoch}/{self.epochs}")

    def step(self, step_in_epoch: int, global_step: int, loss: float, lr: float) -> None:
        if self.bar is not None:
            self.postfix.update(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            self.bar.set_postfix(self.postfix)
            self.bar.advance()
        elif self.ticker is not None:
            detail = (
                f"epoch {self.epoch}/{self.epochs}, step {step_in_epoch}/{self.steps_in_epoch}"
                f" of the epoch, loss {loss:.4f}, lr {lr:.3e}"
            )
            self.ticker.advance(detail=detail, force=global_step % self.log_every == 0)

    def end_epoch(self, summary: str, record: dict[str, Any]) -> None:
        if self.bar is not None:
            if "test_top1" in record:
                self.postfix["test_top1"] = f"{record['test_top1']:.4f}"
                self.bar.set_postfix(self.postfix)
        elif self.mode == "log":
            self.line(summary, progress=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.ticker is not None:
            self.ticker.__exit__(None, None, None)
            self.ticker = None

    def line(self, text: str, progress: bool = False) -> None:
        """A log line (in bar mode printed above the bar, which stays on the last line);
        ``progress``: a progress line (hidden with --json), else a notice."""
        if self.mode == "none":
            return
        text = f"[{time.perf_counter() - self.start:7.1f}s] {text}"
        if self.bar is not None:
            self.bar.write(text)
        else:
            log.info("%s", text, extra=PROGRESS if progress else None)


def plot_curves(
    records: list[dict[str, Any]], path: Path, title: str,
    lr: list[float] | None = None, steps_per_epoch: int = 1,
) -> Path | None:  # fmt: skip
    """Loss, top-1 and (with ``lr``, one value per optimizer step) the learning rate against
    epochs from the metrics records -> ``path`` (PNG)."""
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    panels = 3 if lr else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    ax_loss, ax_acc = axes[0], axes[1]
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        points = [
            (e, r[key]) for e, r in zip(epochs, records, strict=True) if r.get(key) is not None
        ]
        if points:
            ax_loss.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
    for key, label in (
        ("train_top1", "train"),
        ("test_top1", "test"),
        ("ema_test_top1", "test (EMA)"),
    ):
        points = [
            (e, r[key]) for e, r in zip(epochs, records, strict=True) if r.get(key) is not None
        ]
        if points:
            ax_acc.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if lr:
        ax_lr = axes[2]
        steps = [(s + 1) / max(steps_per_epoch, 1) for s in range(len(lr))]
        ax_lr.plot(steps, lr, color="#55a868")
        warmup = lr.index(max(lr)) + 1  # the peak ends the warmup
        note = f"warmup {warmup} steps" if warmup > 1 else "no warmup"
        ax_lr.set(xlabel="epoch", ylabel="learning rate", title=f"learning rate ({note})")
        ax_lr.set_ylim(bottom=0)
        ax_lr.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
