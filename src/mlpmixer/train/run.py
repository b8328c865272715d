"""`train(config)`: build data, model and optimizer from a config, run, and write the run directory.

The run reads top to bottom: `train` resolves the config (or plans the resume), `_train`
joins the process group and handles SIGTERM, `_run` takes the named steps, each returning a
named object: `_setup` (data: `steps.build_data`; model: `steps.build_model`; the loop's
pieces: a `Trainer`), the resume, `_open_logs`, `Trainer.fit` (epochs of `run_epoch`, steps
of `train_step`) and `_write_outputs`.

Run directory (``run.out``, default ``runs/<dataset>-<model>-<timestamp>``)::

    run.json              the run id (`mlpmixer.train.run_guard`): marks the directory as a run
    config.yaml           the resolved config (``--resume`` checks it against the checkpoint's)
    metrics.jsonl         one line per epoch: epoch, step, lr, train loss/top-1, test loss/top-1/top-5,
                          images per second
    summary.json          final metrics, time, throughput, parameters, model, data set, epochs
    model/                the final weights in the project's format (config.json + model.safetensors;
                          `mlpmixer.load_model("RUN_DIR/model")`); model_ema/ too with an EMA
    curves.png            loss and top-1 against epochs
    checkpoints/last.pt   the training state for --resume
    tensorboard/          event files, when tensorboard is installed
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints.run_model import write_run_model
from ..checkpoints.train_state import checkpoint_path
from ..data import DatasetInfo
from ..data.build import find_source
from ..data.outline import dataset_outline
from ..errors import ConfigError, RunError, Terminated
from ..fileio import atomic_write_json, atomic_write_text
from ..layout import (
    CURVES_FILE,
    EMA_MODEL_DIR,
    MODEL_DIR,
    RUN_CONFIG_FILE,
    SKIPPED_FILE,
    SUMMARY_FILE,
)
from ..models import MixerConfig, MlpFamilyModel
from ..precision import warn_if_emulated
from ..progress import shown_on_stderr
from .augment import DeviceAugment
from .config import Assignment, TrainConfig, parse_assignment
from .distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    destroy_process_group,
    env_dist_info,
    full_state,
    init_process_group,
    peers_checked,
    resolve_device,
    unwrap,
    wrap_model,
)
from .ema import ModelEma
from .lock import run_dir_lock
from .logs import MetricsLog, Progress, TensorBoardLog, plot_curves
from .loop import Trainer
from .names import slug
from .optim import build_optimizer, build_scheduler
from .presets import resolve_config
from .run_guard import (
    CONFIG_HEADER,
    ResumePlan,
    check_out_dir,
    checkpoint_changed,
    config_sha256,
    new_run_id,
    plan_resume,
    write_run_id,
)
from .steps import build_data, build_loaders, build_model, plan_inputs
from .stream_order import bind_stream_order
from .termination import sigterm_raises, terminated_message
from .threads import ThreadChoice, choose_threads


@dataclass
class RunResult:
    """What `train` returns: the run directory, the summary and the final (unwrapped) model."""

    run_dir: Path
    summary: dict[str, Any]
    model: MlpFamilyModel


@dataclass(frozen=True)
class RunSetup:
    """What `_setup` built: the trainer, the model's name (as reported and recorded), the
    training data's `DatasetInfo`, and the CPU threads line (`ThreadChoice.describe`)."""

    trainer: Trainer
    model_name: str
    info: DatasetInfo
    threads: str


@dataclass(frozen=True)
class RunLogs:
    """Where the run reports: metrics.jsonl and tensorboard (rank 0 only), progress."""

    metrics: MetricsLog | None
    tensorboard: TensorBoardLog | None
    progress: Progress


# --- setup pieces -------------------------------------------------------------------------------


def _configure_torch(config: TrainConfig, device: torch.device) -> None:
    t = config.train
    if t.threads:
        torch.set_num_threads(t.threads)
    deterministic = t.deterministic if t.deterministic is not None else device.type == "cpu"
    # CPU kernels are deterministic for a fixed thread count (the resume test checks it);
    # the switch only matters on accelerators, and importing it costs seconds (torch._dynamo).
    if device.type != "cpu":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic


def _new_run_dir(
    config: TrainConfig, model_name: str, dist: DistInfo, locks: contextlib.ExitStack
) -> Path:
    if config.run.out:
        run_dir = Path(config.run.out)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        model_slug = slug(model_name.replace("/", "-"))
        run_dir = Path("runs") / f"{slug(config.data.dataset)}-{model_slug}-{stamp}"
    run_dir = Path(broadcast_object(str(run_dir)))
    refusal = None
    if dist.is_main:
        try:  # checked again under the lock: two runs starting at once must not both pass
            check_out_dir(run_dir)
            locks.enter_context(run_dir_lock(run_dir))
            check_out_dir(run_dir)
        except ConfigError as err:
            refusal = str(err)
    refusal = broadcast_object(refusal)  # every process stops, none waits for the others
    if refusal:
        raise ConfigError(refusal)
    return run_dir


def _init_sigmoid_head(model: MlpFamilyModel) -> None:
    """Sigmoid loss: start every class at prior 1/K (big_vision's head bias -log K)."""
    if isinstance(model.head, nn.Linear):
        with torch.no_grad():
            model.head.bias.fill_(-math.log(model.config.num_classes))


# --- the run ----------------------------------------------------------------------------------


def _setup(
    config: TrainConfig,
    run_dir: Path | None,
    dist: DistInfo,
    device: torch.device,
    locks: contextlib.ExitStack,
) -> RunSetup:
    """The run's objects, in order: data (`build_data`), model (`build_model`), the run
    directory, then the loop's pieces (threads, EMA, wrapping, optimizer, loaders, schedule,
    device augmentation) gathered in a `Trainer`."""
    t = config.train
    torch.manual_seed(t.seed)  # model initialisation: the same on every process
    source = find_source(config.data.dataset)
    plan = plan_inputs(config, source)
    data = build_data(config, plan, source)
    built = build_model(config, plan, data.info)
    model, model_name, info = built.model, built.name, data.info
    if t.loss == "sigmoid" and config.model.pretrained is None:
        _init_sigmoid_head(model)
    model.set_grad_checkpointing(t.grad_checkpointing)
    if config.model.name == "auto" and config.model.pretrained is None:
        config = config.replace(model={"name": model_name})  # what resume must rebuild
    if run_dir is None:
        run_dir = _new_run_dir(config, model_name, dist, locks)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if t.parallel == "fsdp" and t.ema_decay and dist.enabled:
        raise ConfigError("train.ema_decay is not supported with train.parallel=fsdp")
    model = model.to(device)
    threads = None
    if device.type == "cpu":
        threads = _thread_choice(config, model, dist)
        torch.set_num_threads(threads.threads)
        config = config.replace(train={"threads": threads.threads})  # what resume must use
    ema = ModelEma(model, t.ema_decay) if t.ema_decay else None
    wrapped: nn.Module = model
    if t.compile:
        wrapped = torch.compile(wrapped)  # type: ignore[assignment]
    wrapped = wrap_model(wrapped, dist, device, t.parallel)
    optimizer = build_optimizer(
        unwrap(wrapped) if t.parallel != "fsdp" else wrapped, config.optim, t.layer_decay
    )
    loaders = build_loaders(config, dist, device, data, run_dir)
    steps_per_epoch = loaders.sampler.steps_per_epoch
    total_steps = t.steps or t.epochs * steps_per_epoch
    scheduler = build_scheduler(
        optimizer, config.schedule, config.optim.lr, total_steps, steps_per_epoch
    )
    scaler = (
        torch.amp.GradScaler("cuda") if t.precision == "fp16" and device.type == "cuda" else None
    )
    mcfg: MixerConfig = unwrap(wrapped).config  # type: ignore[assignment]
    augment = DeviceAugment(
        config.augment,
        tuple(mcfg.img_size),
        mcfg.mean,
        mcfg.std,
        info.num_classes,
        t.label_smoothing,
    )
    trainer = Trainer(
        config=config, run_dir=run_dir, dist=dist, device=device, model=wrapped,
        optimizer=optimizer, scheduler=scheduler, scaler=scaler, ema=ema, augment=augment,
        loaders=loaders, total_steps=total_steps,
    )  # fmt: skip
    return RunSetup(trainer, model_name, info, threads.describe() if threads else "")


def _thread_choice(config: TrainConfig, model: MlpFamilyModel, dist: DistInfo) -> ThreadChoice:
    """`choose_threads` on the main process (measured alone), the same count everywhere."""
    t = config.train
    choice = None
    if dist.is_main:
        micro_batch = t.batch_size // (dist.world_size * t.grad_accum)
        choice = choose_threads(t.threads, model, micro_batch)
    return broadcast_object(choice)


def _final_model(trainer: Trainer) -> MlpFamilyModel:
    """A plain CPU `MlpFamilyModel` holding the final weights (gathered under FSDP)."""
    base: MlpFamilyModel = unwrap(trainer.model)  # type: ignore[assignment]
    if trainer.parallel == "fsdp":
        state, _ = full_state(trainer.model, trainer.optimizer, "fsdp", everywhere=True)
        return MlpFamilyModel.from_state_dict({k: v.cpu() for k, v in state.items()}, base.config)
    return base


def _count_skipped(run_dir: Path, info: DatasetInfo) -> int:
    """Images left out or replaced (``data.skip_bad_images``): the distinct lines of
    `SKIPPED_FILE` — the files a folder run left out at the start, and the shard samples the
    workers replaced while reading, over every epoch and every resumed part — rewritten
    sorted and without repeats."""
    path = run_dir / SKIPPED_FILE
    if not path.exists():
        return len(info.skipped)
    lines = sorted({line for line in path.read_text(encoding="utf-8").splitlines() if line})
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def _write_outputs(
    trainer: Trainer, model: MlpFamilyModel, model_name: str, info: DatasetInfo, resumed: bool
) -> dict[str, Any]:
    run_dir, cfg, state = trainer.run_dir, trainer.config, trainer.state
    model_cpu = MlpFamilyModel.from_state_dict(
        {k: v.detach().cpu() for k, v in model.state_dict().items()}, model.config
    )
    summary: dict[str, Any] = {
        "model": model_name,
        "dataset": info.name,
        "epochs": trainer.num_epochs,
        "steps": state.global_step,
        "batch_size": cfg.train.batch_size,
        "params": model_cpu.num_params(),
        "train_seconds": round(state.train_seconds, 3),
        "images_per_second": round(state.images_seen / max(state.pure_train_seconds, 1e-9), 1),
        "world_size": trainer.dist.world_size,
        "device": str(trainer.device),
        "precision": cfg.train.precision,
        "seed": cfg.train.seed,
        "resumed": resumed,
        "run_id": trainer.run_id,
        "config_sha256": config_sha256(cfg),
        "checkpoint": str(run_dir / MODEL_DIR),
        "skipped_images": _count_skipped(run_dir, info),
    }
    # a resumed run that was already finished trains no epoch: its last record has the
    # train metrics (last_eval alone lost train_loss/train_top1 from summary.json)
    records = MetricsLog(run_dir).read()
    last = {**(records[-1] if records else {}), **trainer.last_eval}
    for key in ("test_top1", "test_top5", "test_loss", "train_loss", "train_top1"):
        if key in last:
            summary[key] = last[key]
    if trainer.ema is not None:
        ema_cpu = MlpFamilyModel.from_state_dict(
            {k: v.detach().cpu() for k, v in trainer.ema.state_dict().items()}, model.config
        )
        ema_cpu.save(run_dir / EMA_MODEL_DIR)
        summary["ema_checkpoint"] = str(run_dir / EMA_MODEL_DIR)
        for key in ("ema_test_top1", "ema_test_top5", "ema_test_loss"):
            if key in trainer.last_eval:
                summary[key] = trainer.last_eval[key]
    # saved once the metrics are known: its README (model card) reports them
    write_run_model(model_cpu, run_dir / MODEL_DIR, summary)
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    if cfg.run.plot:
        what = f"fine-tune of {model_name}" if cfg.model.pretrained else model_name
        lrs = [
            cfg.optim.lr * trainer.scheduler.lr_lambdas[0](s) for s in range(trainer.total_steps)
        ]
        steps_per_epoch = trainer.train_sampler.steps_per_epoch
        plot_curves(records, run_dir / CURVES_FILE, f"{run_dir.name}: {what} on {info.name}",
                    lr=lrs, steps_per_epoch=steps_per_epoch)  # fmt: skip
    return summary


def train(
    config: TrainConfig | None = None,
    resume: str | os.PathLike[str] | None = None,
    overrides: Sequence[Assignment] = (),
    *,
    dataset: str | None = None,
    model: str | None = None,
    progress: bool = True,
) -> RunResult:
    """Run a training job; returns the run directory, the summary and the final model.

    The config is `mlpmixer.train.presets.resolve_config`'s, as for ``mlpmixer train``:
    ``train()`` is the digits recipe (configs/digits.yaml), ``train(dataset="cifar10",
    model="gmlp_s16_224", overrides=["train.epochs=10"])`` the CLI's ``--dataset cifar10
    --model gmlp_s16_224 --epochs 10``, ``train(config)`` that config as it is.
    ``resume=RUN_DIR`` continues that run from ``RUN_DIR/checkpoints/last.pt`` with the
    config stored there; ``overrides`` (``--set`` style) may only change what
    `mlpmixer.train.run_guard` allows (e.g. ``train.epochs`` to extend the run), anything
    else that disagrees is a `ConfigError`. A new run goes only into a new or empty
    ``run.out`` (`check_out_dir`).
    Under torchrun every process calls this; only rank 0 writes files.

    What it says (the data sizing line, the run's first line, a progress bar on a terminal
    or in a notebook, else progress lines, as ``mlpmixer train`` does) goes to stderr when the
    program has configured no logging, else to its logging handlers (logger ``mlpmixer``,
    INFO); ``progress=False`` says nothing but warnings (``run.progress: none``).
    """
    with contextlib.ExitStack() as locks, shown_on_stderr(progress):  # lock held to the end
        if resume is None:
            _check_out_early(config, overrides)
            if dataset is not None:  # an unknown name, before resolve_config sizes the run
                dataset_outline(dataset)
            config = resolve_config(config, dataset=dataset, model=model, overrides=overrides)
            overrides = ()
        else:  # given on resume, they must agree with the run (checked like any override)
            named = {"data.dataset": dataset, "model.name": model}
            overrides = [*((k, v) for k, v in named.items() if v), *overrides]
        if not progress:  # run.progress may change on resume (`run_guard`)
            overrides = [*overrides, ("run.progress", "none")]
        return _train(config, resume, overrides, locks)


def _check_out_early(config: TrainConfig | None, overrides: Sequence[Assignment]) -> None:
    """``run.out`` as given (the last ``run.out=`` override, else the config's), refused by
    `check_out_dir` before `resolve_config` reads a folder data set to size the run."""
    out: Any = config.run.out if config is not None else None
    for assignment in overrides:
        if isinstance(assignment, str):  # a bad value is refused here, as it would be later
            if assignment.partition("=")[0].strip() != "run.out":
                continue
            assignment = parse_assignment(assignment)
        if assignment[0] == "run.out":
            out = assignment[1]
    if isinstance(out, str) and out:
        check_out_dir(Path(out))


def check_data_early(config: TrainConfig) -> None:
    """Before any model or data is built: the data set must exist (`dataset_outline`), and
    the batch must fit its training images where their number is known without loading."""
    d = config.data
    outline = dataset_outline(d.dataset, d.val_fraction, config.train.seed)
    batch, count = config.train.batch_size, outline.train_images
    if count is not None and d.train_split in (None, "train") and batch > count:
        raise ConfigError(
            f"train.batch_size={batch} is larger than the training set ({count} examples); "
            f"use a batch size of at most {count}"
        )


def _train(
    config: TrainConfig | None,
    resume: str | os.PathLike[str] | None,
    overrides: Sequence[Assignment],
    locks: contextlib.ExitStack,
) -> RunResult:
    run_dir = plan = None
    if resume is not None:
        run_dir = Path(resume)
        plan = plan_resume(run_dir, overrides)  # refusals come before anything is written
        if env_dist_info().is_main:  # refuse to resume a run another process is training
            locks.enter_context(run_dir_lock(run_dir))
            if checkpoint_changed(run_dir, plan):  # it finished while we were checking
                plan = plan_resume(run_dir, overrides)
        config = plan.config
    else:
        config = config or TrainConfig()
        if overrides:
            config = config.override(overrides)
        if config.run.out:  # before the data is read; on every process, so none waits in vain
            check_out_dir(Path(config.run.out))  # (rank 0 writes nothing before all joined)
        check_data_early(config)
    dist = env_dist_info()
    device = resolve_device(config.train.device, dist)
    init_process_group(dist, device, config.train.dist_timeout_s)
    threads = torch.get_num_threads()
    built: list[Trainer] = []  # the trainer once set up: what a SIGTERM line reports
    try:
        # SIGTERM outermost: a survivor handling a lost peer in peers_checked still says so
        with sigterm_raises(), peers_checked():
            return _run(config, run_dir, plan, dist, device, locks, built)
    except Terminated:
        raise Terminated(_terminated_line(built, run_dir, plan)) from None
    finally:
        torch.set_num_threads(threads)  # train.threads applies to the run only
        built.clear()  # the trainer holds the DDP/FSDP wrapper, which holds the process group
        destroy_process_group()


def _terminated_line(built: list[Trainer], run_dir: Path | None, plan: ResumePlan | None) -> str:
    """What a SIGTERM ended: the step reached and the complete checkpoint that is kept."""
    if not built:  # before the trainer existed: a resumed run's checkpoint is untouched
        kept = checkpoint_path(run_dir) if plan is not None and run_dir is not None else None
        return terminated_message(run_dir, kept, None, None)
    trainer = built[0]
    saved = trainer.last_good_step
    kept = checkpoint_path(trainer.run_dir) if saved is not None else None
    return terminated_message(trainer.run_dir, kept, saved, trainer.state.global_step)


def _check_length(trainer: Trainer, run_dir: Path | None) -> None:
    """A resumed run may be made longer or shorter, never shorter than what it has done."""
    done = trainer.state.global_step
    if trainer.total_steps < done:
        t = trainer.config.train
        asked = f"train.steps={t.steps}" if t.steps else f"train.epochs={t.epochs}"
        raise ConfigError(
            f"{asked} ({trainer.total_steps} steps) is shorter than the {done} steps {run_dir} "
            "has already done; give a larger value, or leave it out"
        )


def _run(
    config: TrainConfig, run_dir: Path | None, plan: ResumePlan | None, dist: DistInfo,
    device: torch.device, locks: contextlib.ExitStack, built: list[Trainer],
) -> RunResult:  # fmt: skip
    """The run, top to bottom: set up (data, model, loop), resume, log, loop, outputs."""
    _configure_torch(config, device)
    if dist.is_main:
        warn_if_emulated(device.type, config.train.precision)  # one line where the CPU lacks it
    setup = _setup(config, run_dir, dist, device, locks)
    trainer, model_name, info = setup.trainer, setup.model_name, setup.info
    built.append(trainer)
    if plan is not None:
        trainer.load_checkpoint(plan.checkpoint)
        _check_length(trainer, run_dir)
        if dist.is_main:
            plan.log_changes()
    state = trainer.state
    bind_stream_order(trainer.train_sampler, trainer.run_dir, dist.world_size, dist.is_main,
                      state.epoch, state.step_in_epoch)  # fmt: skip
    trainer.run_id = broadcast_object(plan.run_id if plan else new_run_id())
    logs = _open_logs(setup, resumed=plan is not None)
    try:
        trainer.fit(logs.metrics, logs.tensorboard, logs.progress)
    finally:
        if logs.tensorboard is not None:
            logs.tensorboard.close()
    model = _final_model(trainer)
    summary: dict[str, Any] = {}
    if dist.is_main:
        summary = _write_outputs(trainer, model, model_name, info, resumed=plan is not None)
    summary = broadcast_object(summary)
    if not summary and dist.is_main:
        raise RunError("the run finished without a summary")
    # Ranks finish at different times (rank 0 writes the outputs); tearing gloo down while
    # a peer still works aborted a process now and then ("terminate called...").
    barrier()
    return RunResult(trainer.run_dir, summary, unwrap(model))  # type: ignore[arg-type]


def _open_logs(setup: RunSetup, resumed: bool) -> RunLogs:
    """Rank 0: run.json, config.yaml, metrics.jsonl (cut back to the checkpoint), tensorboard,
    and the run's first line; the other ranks log nothing."""
    trainer, model_name, info = setup.trainer, setup.model_name, setup.info
    run_dir, cfg, main = trainer.run_dir, trainer.config, trainer.dist.is_main
    progress = Progress(cfg.run.progress if main else "none", cfg.train.log_every_steps)
    if not main:
        return RunLogs(None, None, progress)
    write_run_id(run_dir, trainer.run_id)
    atomic_write_text(run_dir / RUN_CONFIG_FILE, _config_yaml(cfg, model_name))
    metrics = MetricsLog(run_dir)
    metrics.truncate_after(trainer.state.epoch)
    tensorboard = TensorBoardLog(run_dir, cfg.run.tensorboard)
    what = "resuming" if resumed else "training"
    progress.line(
        f"{what} {model_name} ({unwrap(trainer.model).num_params():,} parameters) on "  # type: ignore[operator]
        f"{info.name}: {trainer.train_sampler.num_examples} "
        f"train / {len(trainer.loaders.eval.dataset.dataset)} test images at "  # type: ignore[attr-defined]
        f"{'x'.join(map(str, info.img_size))} px, batch size {cfg.train.batch_size}, "
        f"{trainer.num_epochs} epochs = {trainer.total_steps} steps, "
        f"{trainer.dist.world_size} process(es) on {trainer.device}"
        f"{f', {setup.threads}' if setup.threads else ''} -> {run_dir}"
    )
    if info.skipped:  # data.skip_bad_images: say how many, list which
        atomic_write_text(run_dir / SKIPPED_FILE, "\n".join(info.skipped) + "\n")
        progress.line(
            f"skipped {len(info.skipped)} unreadable image(s), listed in {run_dir / SKIPPED_FILE}"
        )
    return RunLogs(metrics, tensorboard, progress)


def _config_yaml(config: TrainConfig, model_name: str) -> str:
    data = config.to_dict()
    if data["model"]["name"] == "auto" and not data["model"]["pretrained"]:
        data["model"]["name"] = model_name  # record what "auto" chose, so resume rebuilds it
    import yaml

    header = f"{CONFIG_HEADER} (mlpmixer train --config this-file reproduces it)\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
