"""Which directory a run may write into, and which changes a resumed run accepts.

A new run goes only into a new or empty directory, or into one holding a run of ours that
stopped before its first checkpoint; a user's folder (or ``--out .``) is never written into.
Every run gets a random run id at its start, kept in ``RUN/run.json``, ``summary.json`` and
every ``checkpoints/last.pt`` (with a SHA-256 of the config), so a ``last.pt`` copied from
another run is refused on ``--resume``.

A resumed run continues with the configuration stored in its checkpoint. ``config.yaml`` edited
since (a different learning rate, batch size, seed...) is refused, naming the key and both
values; so is a flag or ``--set`` that disagrees, except for `RESUME_CHANGES` (extending the run,
a new peak learning rate after a NaN), which are logged, and `RESUME_FREE` settings that do not
change the computation (threads, workers, progress, plots).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoints.train_state import checkpoint_path, load_train_state
from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_write_json, check_new_dir
from ..layout import RUN_CONFIG_FILE, RUN_ID_FILE
from .config import Assignment, TrainConfig, load_config
from .lock import LOCK_FILE

log = logging.getLogger(__name__)

RUN_FORMAT = "mlpmixer-run"
CONFIG_HEADER = "# resolved config of this run"  # the first line of every run's config.yaml
# keys a resumed run may change on request (logged): a longer (or shorter) run, a new peak LR
RESUME_CHANGES = ("train.epochs", "train.steps", "optim.lr")
# keys that do not change what is computed: taken from the command line without a word
RESUME_FREE = (
    "run.out", "run.progress", "run.plot", "run.tensorboard", "train.threads", "train.device",
    "data.num_workers", "data.root", "data.download", "train.log_every_steps",
    "train.checkpoint_every_epochs", "train.checkpoint_every_steps", "train.dist_timeout_s",
)  # fmt: skip


# --- the run id -------------------------------------------------------------------------------


def new_run_id() -> str:
    """A fresh random run id (32 hex digits)."""
    return uuid.uuid4().hex


def config_sha256(config: TrainConfig | Mapping[str, Any]) -> str:
    """SHA-256 of a config, leaving out ``run.out`` (a run may be moved and resumed elsewhere)."""
    data = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    data = {**data, "run": {k: v for k, v in data.get("run", {}).items() if k != "out"}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def write_run_id(run_dir: Path, run_id: str) -> None:
    """``RUN/run.json``: what marks the directory as a run of ours, with its id."""
    atomic_write_json(run_dir / RUN_ID_FILE, {"format": RUN_FORMAT, "run_id": run_id})


def read_run_id(run_dir: Path) -> str | None:
    """The run id of ``RUN/run.json``; None if absent or not ours (never raises)."""
    path = run_dir / RUN_ID_FILE
    try:
        if not path.is_file() or path.stat().st_size > 4096:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        return None
    run_id = data.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def _legacy_run(run_dir: Path) -> bool:
    """A run written before run ids: its config.yaml starts with our header line."""
    path = run_dir / RUN_CONFIG_FILE
    try:
        if not path.is_file():
            return False
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.readline().startswith(CONFIG_HEADER)
    except OSError:
        return False


def is_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a training run of ours (new or from before run ids)."""
    return read_run_id(run_dir) is not None or _legacy_run(run_dir)


# --- a new run's directory --------------------------------------------------------------------


def check_out_dir(run_dir: Path) -> None:
    """Refuse (`ConfigError`, exit 2, nothing written) a directory a new run must not use.

    Allowed: a path that does not exist, an empty directory, a run of ours that stopped before
    its first checkpoint. Refused: a file, a user's folder, a run with a checkpoint.
    """
    if not check_new_dir(run_dir, is_run_dir, "run", ignore=(LOCK_FILE,)):
        return
    last = checkpoint_path(run_dir)
    if last.exists() or last.is_symlink():
        raise ConfigError(
            f"{run_dir} already holds a training run; continue it with: mlpmixer train "
            f"--resume {run_dir} (or choose another --out; nothing was written)"
        )


# --- resuming ---------------------------------------------------------------------------------

_MISSING = object()  # a key one of two configs lacks


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        # model.overrides is a free-form mapping of model fields: compared leaf by leaf
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_differences(
    old: TrainConfig, new: TrainConfig, ignore: Sequence[str] = ()
) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every setting that differs, keys sorted."""
    before, after = dict(_flatten(old.to_dict())), dict(_flatten(new.to_dict()))
    return [
        (key, before.get(key, _MISSING), after.get(key, _MISSING))
        for key in sorted(before.keys() | after.keys())
        if key not in ignore and before.get(key, _MISSING) != after.get(key, _MISSING)
    ]


def _show(value: Any) -> str:
    return "(absent)" if value is _MISSING else json.dumps(value)


@dataclass
class ResumePlan:
    """What `plan_resume` decided: the config to continue with, the loaded state, the changes."""

    config: TrainConfig
    checkpoint: dict[str, Any]
    run_id: str
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    stat: tuple[int, int, int] = (0, 0, 0)  # (inode, size, mtime) of the last.pt read

    def log_changes(self) -> None:
        for key, old, new in self.changes:
            log.warning("resuming with %s changed from %s to %s (asked for)", key, _show(old),
                        _show(new))  # fmt: skip


def _file_stat(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def checkpoint_changed(run_dir: Path, plan: ResumePlan) -> bool:
    """Whether last.pt was replaced since `plan_resume` read it (a run finished meanwhile)."""
    try:
        return _file_stat(checkpoint_path(run_dir)) != plan.stat
    except OSError:
        return True


def _stored_config(run_dir: Path, state: dict[str, Any], on_disk: TrainConfig) -> TrainConfig:
    """The config kept in the checkpoint, validated (model "auto" as config.yaml resolved it)."""
    stored = state.get("config")
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"{checkpoint_path(run_dir)}: holds no run configuration")
    stored = {k: dict(v) if isinstance(v, Mapping) else v for k, v in stored.items()}
    model = stored.get("model")
    if isinstance(model, dict) and model.get("name") == "auto" and not model.get("pretrained"):
        model["name"] = on_disk.model.name  # runs before run ids kept "auto" in last.pt only
    try:
        return TrainConfig.from_dict(stored)
    except ConfigError as err:
        raise CheckpointError(f"{checkpoint_path(run_dir)}: its stored config: {err}") from err


def _check_binding(run_dir: Path, state: dict[str, Any], run_id: str | None) -> str:
    """The run id the checkpoint and ``RUN/run.json`` agree on (a new one for an old run)."""
    last = checkpoint_path(run_dir)
    held = state.get("run_id")
    if held is None and run_id is None:  # written before run ids: the config check must do
        return new_run_id()
    if run_id is None:
        raise ConfigError(
            f"{run_dir}/{RUN_ID_FILE} is missing, so {last} cannot be matched to this run; "
            "restore the file, or start a new run"
        )
    if held != run_id:
        raise ConfigError(
            f"{last} belongs to another run (run id {held}, this run's is {run_id}): it was "
            f"copied or moved here; put back this run's checkpoint, or resume the other run "
            "in its own directory"
        )
    digest = state.get("config_sha256")
    if digest is not None and digest != config_sha256(state["config"]):
        raise CheckpointError(f"{last}: the stored config does not match its config_sha256")
    return run_id


def plan_resume(run_dir: Path, overrides: Sequence[Assignment]) -> ResumePlan:
    """Check ``run_dir`` and the requested changes (reads the run, writes nothing).

    Raises `ConfigError` (exit 2) for a folder that is not a run of ours, an edited
    config.yaml, a checkpoint of another run, or a flag that disagrees with the run.
    """
    if not run_dir.is_dir() or not is_run_dir(run_dir):
        raise ConfigError(
            f"{run_dir}: not a run directory (no {RUN_ID_FILE} or {RUN_CONFIG_FILE} written by "
            "mlpmixer train); give the directory a run wrote (runs/...)"
        )
    on_disk = load_config(run_dir / RUN_CONFIG_FILE)
    last = checkpoint_path(run_dir)
    stat = _file_stat(last) if last.is_file() else (0, 0, 0)
    state = load_train_state(run_dir)
    run_id = _check_binding(run_dir, state, read_run_id(run_dir))
    stored = _stored_config(run_dir, state, on_disk)
    stored = stored.override([f"run.out={json.dumps(str(run_dir))}"])
    requested = stored.override(overrides)
    _check_out(run_dir, requested)
    changes = config_differences(stored, requested, ignore=RESUME_FREE)
    refused = [c for c in changes if c[0] not in RESUME_CHANGES]
    if refused:
        key, old, new = refused[0]
        raise ConfigError(
            f"--resume {run_dir}: {key} is {_show(old)} in the run but {_show(new)} was given"
            f"{_more(refused)}; a resumed run keeps its settings (it may change only "
            f"{', '.join(RESUME_CHANGES)}); drop the option, or start a new run"
        )
    # a file rewritten by a resume that stopped before its next checkpoint agrees with what is
    # asked once the same option is given again
    asked = dict(_flatten(requested.to_dict()))
    edited = [
        (key, old, new)
        for key, old, new in config_differences(stored, on_disk, ignore=RESUME_FREE)
        if asked.get(key, _MISSING) != new
    ]
    if edited:
        key, old, new = edited[0]
        if key in RESUME_CHANGES:
            way = f"or give --set {key}={_show(new)} to change it"
        else:
            way = "or start a new run to train with other settings"
        raise ConfigError(
            f"{run_dir}/{RUN_CONFIG_FILE} was edited after the checkpoint: {key} is {_show(new)} "
            f"there but {_show(old)} in the run{_more(edited)}; a resumed run keeps its "
            f"settings: restore the file, {way}"
        )
    _check_extension(stored, requested)
    return ResumePlan(requested, state, run_id, changes, stat)


def _more(differences: list) -> str:
    return f" (and {len(differences) - 1} more setting(s))" if len(differences) > 1 else ""


def _check_out(run_dir: Path, requested: TrainConfig) -> None:
    out = requested.run.out
    if out is not None and os.path.realpath(out) != os.path.realpath(run_dir):
        raise ConfigError(
            f"--out {out} disagrees with --resume {run_dir}: a resumed run stays in its own "
            "directory; drop --out (to copy a run, copy its directory and resume the copy)"
        )


def _check_extension(stored: TrainConfig, requested: TrainConfig) -> None:
    """``--epochs`` does nothing to a run counted in steps: say so instead of ignoring it."""
    s, r = stored.train, requested.train
    if r.epochs != s.epochs and r.steps is not None:
        raise ConfigError(
            f"train.epochs={r.epochs} has no effect: the run counts train.steps={r.steps}; "
            "change its length with --steps"
        )
