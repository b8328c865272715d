"""The training loop: steps, epochs, evaluation, checkpoints, NaN/inf stop.

Exactness: every random draw of optimizer step ``s`` on process ``r`` (augmentation,
mixup, dropout, stochastic depth) comes from torch's global generators reseeded with
(seed, r, s) at the start of the step, and the data order depends only on (seed, epoch).
A run resumed from a checkpoint taken after step ``s`` therefore replays steps s+1, s+2, ...
exactly as the uninterrupted run would; on CPU with deterministic algorithms the final
weights are bitwise identical.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.train_state import checkpoint_path, rng_state, save_train_state, set_rng_state
from ..data.info import normalize
from ..errors import CheckpointError, RunError
from ..evaluate.scores import score_batches
from ..precision import autocast
from .augment import DeviceAugment
from .config import TrainConfig
from .distributed import (
    DistInfo,
    all_reduce_max,
    all_reduce_sum,
    barrier,
    full_state,
    load_full_state,
    unwrap,
)
from .ema import ModelEma
from .logs import MetricsLog, Progress, TensorBoardLog
from .run_guard import config_sha256
from .sampler import StreamBatchPlan, TrainBatchSampler
from .steps import RunLoaders
from .termination import sigterm_deferred

log = logging.getLogger(__name__)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of optimizer step ``step`` on process ``rank`` (distinct, 63-bit)."""
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729 + 1) % (2**63 - 1)


def compute_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean over the batch of softmax cross-entropy (soft targets) or summed sigmoid BCE."""
    logits = logits.float()
    if kind == "sigmoid":
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return bce.sum(dim=-1).mean()
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


@dataclass
class RunPosition:
    """Where the run is: ``epoch`` (0-based, current), steps done in it, steps done in total."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    train_seconds: float = 0.0
    pure_train_seconds: float = 0.0
    images_seen: int = 0


@dataclass
class EpochSums:
    """Running sums of the epoch's training metrics on this process: loss·n, correct, n."""

    values: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))

    def add(self, loss: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        self.values += torch.stack(
            [
                loss.detach().double().cpu() * count,
                correct.double().cpu(),
                torch.tensor(count, dtype=torch.float64),
            ]
        )


@dataclass
class Trainer:
    """Holds everything a run needs; `fit` runs it to the end (or to a NaN)."""

    config: TrainConfig
    run_dir: Path
    dist: DistInfo
    device: torch.device
    model: nn.Module  # possibly wrapped (DDP, FSDP, compile)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    ema: ModelEma | None
    augment: DeviceAugment
    loaders: RunLoaders
    total_steps: int
    state: RunPosition = field(default_factory=RunPosition)
    sums: EpochSums = field(default_factory=EpochSums)
    last_good_step: int | None = None
    last_eval: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False  # set by the first Ctrl-C; the loop saves and stops
    run_id: str = ""  # binds checkpoints/last.pt to its run (checked on --resume)

    # --- helpers -------------------------------------------------------------------------

    @property
    def train_sampler(self) -> TrainBatchSampler | StreamBatchPlan:
        """The training batches' plan: steps per epoch, the epoch and position to start at."""
        return self.loaders.sampler

    @property
    def num_epochs(self) -> int:
        return math.ceil(self.total_steps / self.train_sampler.steps_per_epoch)

    @property
    def model_config(self) -> Any:
        """The model's `MixerConfig` (classes, mean and std the evaluation normalises with)."""
        return unwrap(self.model).config

    @property
    def parallel(self) -> str:
        return self.config.train.parallel if self.dist.enabled else "none"

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device.type, self.config.train.precision)

    def _no_sync(self, last_micro: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on all but the last accumulation micro-batch."""
        if last_micro or not self.dist.enabled:
            return contextlib.nullcontext()
        if hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        if hasattr(self.model, "set_requires_gradient_sync"):  # FSDP2
            self.model.set_requires_gradient_sync(False)
        return contextlib.nullcontext()

    def _to_device(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        if self.config.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=True)

    # --- one optimizer step ----------------------------------------------------------------

    def train_step(self, micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """Forward/backward over the accumulation micro-batches, then one optimizer step.

        Returns the step's mean loss. Raises `RunError` before updating the weights if the
        loss is NaN/inf on any process.
        """
        cfg = self.config.train
        torch.manual_seed(step_seed(cfg.seed, self.dist.rank, self.state.global_step))
        self.model.train()
        total_loss = torch.zeros((), device=self.device)
        accum = len(micro_batches)
        for i, (images, labels) in enumerate(micro_batches):
            images, labels = self._to_device(images, labels)
            with torch.no_grad():
                images, targets = self.augment(images, labels)
            last = i == accum - 1
            if last and hasattr(self.model, "set_requires_gradient_sync"):
                self.model.set_requires_gradient_sync(True)
            with self._no_sync(last), self.autocast():
                logits = self.model(images)
                loss = compute_loss(logits, targets, cfg.loss)
            scaled = loss / accum
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total_loss += loss.detach() / accum
            correct = (logits.detach().argmax(-1) == targets.argmax(-1)).sum()
            self.sums.add(loss, correct, labels.shape[0])
        if self.state.global_step % cfg.nonfinite_check_every == 0:
            self._check_finite(total_loss)
        self._optimizer_step()
        return float(total_loss)

    def _check_finite(self, loss: torch.Tensor) -> None:
        bad = all_reduce_max((~torch.isfinite(loss)).float().reshape(1))
        if bad.item() > 0:
            self.optimizer.zero_grad(set_to_none=True)
            kept = (
                f"The last good checkpoint (after step {self.last_good_step}) is kept at "
                f"{checkpoint_path(self.run_dir)}"
                if self.last_good_step is not None
                else "No checkpoint had been written yet"
            )
            raise RunError(
                f"the training loss became {float(loss)} at epoch {self.state.epoch + 1}, step "
                f"{self.state.step_in_epoch + 1} (global step {self.state.global_step + 1}); the "
                f"run stopped before applying it. {kept}. Lower optim.lr, keep "
                "optim.clip_grad_norm, or use fp32/bf16 instead of fp16."
            )

    def _optimizer_step(self) -> None:
        clip = self.config.optim.clip_grad_norm
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(unwrap(self.model))
        self.state.global_step += 1
        self.state.step_in_epoch += 1

    # --- evaluation --------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Loss, top-1 and top-5 (when there are >= 5 classes) on the held-out split, summed
        over every process (`mlpmixer.evaluate.scores.score_batches`, the one loop)."""
        model.eval()
        cfg = self.model_config
        classes = cfg.num_classes

        def forward(
            images: torch.Tensor, labels: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            images, labels = self._to_device(images, labels)
            with self.autocast():
                return model(normalize(images, cfg.mean, cfg.std)).float(), labels

        def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            targets = F.one_hot(labels, classes).float()
            return compute_loss(logits, targets, self.config.train.loss)

        scores = score_batches(forward, self.loaders.eval, classes, loss, self.device)
        loss_sum, top1, top5, n = all_reduce_sum(scores.sums.to(self.device)).tolist()
        result = {"test_loss": loss_sum / n, "test_top1": top1 / n}
        if classes >= 5:
            result["test_top5"] = top5 / n
        return result

    # --- checkpoints ---------------------------------------------------------------------------

    def _weights_finite(self) -> bool:
        bad = torch.zeros(1, device=self.device)
        for p in self.model.parameters():
            local = p.to_local() if hasattr(p, "to_local") else p
            if not torch.isfinite(local).all():
                bad += 1
        return all_reduce_max(bad).item() == 0

    def save_checkpoint(self) -> None:
        """Collective (every process calls it); rank 0 writes ``checkpoints/last.pt`` atomically."""
        if not self._weights_finite():
            raise RunError(
                f"the weights hold NaN/inf at global step {self.state.global_step}; not "
                f"overwriting the last good checkpoint {checkpoint_path(self.run_dir)}"
            )
        model_state, optim_state = full_state(self.model, self.optimizer, self.parallel)
        epoch_sums = all_reduce_sum(self.sums.values)  # a collective: every rank takes part
        # a SIGTERM between the file's rename and last_good_step would be told "no checkpoint"
        with sigterm_deferred():
            if self.dist.is_main:
                save_train_state(
                    self.run_dir,
                    {
                        "model": model_state,
                        "optimizer": optim_state,
                        "scheduler": self.scheduler.state_dict(),
                        "scaler": self.scaler.state_dict() if self.scaler else None,
                        "ema": self.ema.state_dict() if self.ema else None,
                        "rng": rng_state(),
                        "progress": vars(self.state).copy(),
                        "epoch_sums": epoch_sums,
                        "config": self.config.to_dict(),
                        "run_id": self.run_id,
                        "config_sha256": config_sha256(self.config),
                        # lets RUN/checkpoints/last.pt be loaded as a model (eval, predict...)
                        "model_config": unwrap(self.model).config.to_dict(),
                    },
                )
            self.last_good_step = self.state.global_step
        barrier()

    def load_checkpoint(self, state: dict[str, Any]) -> None:
        try:
            load_full_state(
                self.model, self.optimizer, state["model"], state["optimizer"], self.parallel
            )
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            # torch lists every mismatching tensor; the first says enough
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            detail = next((line for line in lines if "mismatch" in line), lines[0] if lines else "")
            raise CheckpointError(
                f"{checkpoint_path(self.run_dir)} does not fit this run's model or optimizer "
                f"({type(err).__name__}: {detail}); was {self.run_dir}/config.yaml edited? "
                "Restore it, or start a new run"
            ) from err
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise RunError("the checkpoint has no EMA weights but train.ema_decay is set")
            self.ema.load_state_dict(state["ema"])
        set_rng_state(state["rng"])
        self.state = RunPosition(**state["progress"])
        # the epoch's sums so far were summed over processes when saved: rank 0 carries them
        sums = state["epoch_sums"] if self.dist.is_main else torch.zeros(3, dtype=torch.float64)
        self.sums = EpochSums(sums.clone())
        self.last_good_step = self.state.global_step

    # --- epochs --------------------------------------------------------------------------------

    def _micro_batches(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        accum = self.config.train.grad_accum
        group: list[tuple[torch.Tensor, torch.Tensor]] = []
        for batch in self.loaders.train:
            group.append(batch)
            if len(group) == accum:
                yield group
                group = []

    def _epoch_record(self, epoch_seconds: float, images: int) -> dict[str, Any]:
        loss_sum, correct, n = all_reduce_sum(self.sums.values).tolist()
        record: dict[str, Any] = {
            "epoch": self.state.epoch + 1,
            "step": self.state.global_step,
            "lr": max(g["lr"] for g in self.optimizer.param_groups),  # the head's, with layer decay
            "train_loss": loss_sum / max(n, 1),
            "train_top1": correct / max(n, 1),
            "images_per_second": images / max(epoch_seconds, 1e-9),
            "epoch_seconds": epoch_seconds,
        }
        return record

    def run_epoch(self, progress: Progress) -> dict[str, Any]:
        cfg = self.config.train
        steps = min(
            self.train_sampler.steps_per_epoch,
            self.total_steps - (self.state.global_step - self.state.step_in_epoch),
        )
        self.train_sampler.set_epoch(self.state.epoch, self.state.step_in_epoch)
        progress.start_epoch(self.state.epoch + 1, steps)
        start = time.perf_counter()
        images = 0
        for group in self._micro_batches():
            loss = self.train_step(group)
            images += self.train_sampler.batch_size
            if self.dist.is_main:
                progress.step(
                    self.state.step_in_epoch,
                    self.state.global_step,
                    loss,
                    self.scheduler.get_last_lr()[0],
                )
            if self.interrupted and self.state.global_step < self.total_steps:
                self._save_and_stop()
            every = cfg.checkpoint_every_steps
            if (
                every
                and self.state.global_step % every == 0
                and self.state.global_step < self.total_steps
            ):
                self.save_checkpoint()
            if self.state.global_step >= self.total_steps or self.state.step_in_epoch >= steps:
                break
        seconds = time.perf_counter() - start
        self.state.pure_train_seconds += seconds
        self.state.images_seen += images
        return self._epoch_record(seconds, images)

    def fit(
        self, metrics: MetricsLog | None, tensorboard: TensorBoardLog | None, progress: Progress
    ) -> dict[str, Any]:
        """Train until ``total_steps``, evaluating and saving at the configured epochs;
        returns the last evaluation."""
        cfg = self.config.train
        progress.start_run(self.total_steps, self.state.global_step, self.num_epochs)
        try:
            with self._graceful_interrupt():
                while self.state.global_step < self.total_steps:
                    epoch_start = time.perf_counter()
                    record = self.run_epoch(progress)
                    last = self.state.global_step >= self.total_steps
                    if last or (self.state.epoch + 1) % cfg.eval_every_epochs == 0:
                        record.update(self.evaluate_with_ema())
                        self.last_eval = record
                    self.state.train_seconds += time.perf_counter() - epoch_start
                    if self.dist.is_main:
                        _log_epoch(record, self.state.global_step, self.num_epochs,
                                   metrics, tensorboard, progress)  # fmt: skip
                    self.state.epoch += 1
                    self.state.step_in_epoch = 0
                    self.sums = EpochSums()
                    if last or self.state.epoch % cfg.checkpoint_every_epochs == 0:
                        self.save_checkpoint()
        finally:
            progress.close()
        if not self.last_eval:  # resumed after the final checkpoint: evaluate it again
            self.last_eval = self.evaluate_with_ema()
        return self.last_eval

    def evaluate_with_ema(self) -> dict[str, Any]:
        """`evaluate` of the model, plus the EMA model's results as ``ema_*`` when there is one."""
        results = self.evaluate(self.model)
        if self.ema is not None:
            results.update({f"ema_{k}": v for k, v in self.evaluate(self.ema.module).items()})
        return results

    @contextlib.contextmanager
    def _graceful_interrupt(self) -> Iterator[None]:
        """First Ctrl-C (SIGINT): finish the step, save a checkpoint, stop; a second one aborts.

        Single-process runs only: under torchrun the processes would have to agree on the
        step to stop at, so there Ctrl-C keeps its default behaviour (resume from the last
        periodic checkpoint).
        """
        if self.dist.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        owner = os.getpid()  # DataLoader workers forked meanwhile inherit this handler

        def request_stop(signum: int, frame: Any) -> None:
            if os.getpid() != owner:  # a worker: keep serving batches, the trainer decides
                return
            if self.interrupted:  # the second Ctrl-C: stop now, the last checkpoint stays
                raise KeyboardInterrupt
            self.interrupted = True
            log.info("interrupt: finishing the current step, then saving a checkpoint "
                     "(Ctrl-C again to stop at once)")  # fmt: skip

        signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _save_and_stop(self) -> None:
        """Save at this step boundary (exactly as a periodic checkpoint) and raise KeyboardInterrupt."""
        self.save_checkpoint()
        log.info(
            "interrupted at global step %d; checkpoint saved to %s; continue with: "
            "mlpmixer train --resume %s",
            self.state.global_step, checkpoint_path(self.run_dir), self.run_dir,
        )  # fmt: skip
        raise KeyboardInterrupt


def _log_epoch(
    record: dict[str, Any], step: int, epochs: int, metrics: MetricsLog | None,
    tensorboard: TensorBoardLog | None, progress: Progress,
) -> None:  # fmt: skip
    """The epoch's record to metrics.jsonl, tensorboard and the progress line (rank 0)."""
    if metrics is not None:
        metrics.append(record)
    if tensorboard is not None:
        tensorboard.scalars(record, step)
    progress.end_epoch(_epoch_line(record, epochs), record)


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    parts = [
        f"epoch {record['epoch']}/{epochs}",
        f"loss {record['train_loss']:.4f}",
        f"train top-1 {record['train_top1']:.4f}",
    ]
    if "test_top1" in record:
        parts.append(f"test top-1 {record['test_top1']:.4f}")
    if "ema_test_top1" in record:
        parts.append(f"EMA test top-1 {record['ema_test_top1']:.4f}")
    parts.append(f"{record['images_per_second']:.0f} img/s")
    return "  ".join(parts)
