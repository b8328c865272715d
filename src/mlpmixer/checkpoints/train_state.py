"""Training-state checkpoints: everything needed to continue a run exactly.

``RUN_DIR/checkpoints/last.pt`` holds the model, optimizer, scheduler, gradient scaler and
EMA state dicts, the RNG states (torch CPU and CUDA, NumPy, Python), the position in the
data (epoch, step in the epoch, global step) and the running sums of the epoch's metrics.
It is written to a temporary file, fsynced and renamed over the previous one
(`mlpmixer.fileio.atomic_path`), so a crash at any moment leaves the previous complete
checkpoint in place. It contains only tensors and plain Python values and is read with
``torch.load(weights_only=True)``: nothing is unpickled as code. A SHA-256 digest of every
tensor's bytes and every plain value is stored in the file and checked on load, so a file
damaged on disk (a flipped bit, a truncated copy) is refused instead of resumed from.
"""

from __future__ import annotations

import errno
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, RunError
from ..fileio import atomic_path
from ..layout import CHECKPOINT_DIR, LAST_CHECKPOINT
from .torch_file import check_tensor_views

FORMAT = "mlpmixer-train-state"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """All generator states as tensors and plain values (safe for ``weights_only`` loading)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "python": [version, list(internal), gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT


def _tensors(value: Any, name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) of every tensor in nested dicts/lists, as `_update_digest` walks."""
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{name}[{i}]")


def _update_digest(digest: Any, value: Any, name: str) -> None:
    """Feed ``value`` (nested dicts/lists of tensors and plain values) into ``digest``."""
    digest.update(name.encode())
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            _update_digest(digest, value[key], f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _update_digest(digest, item, f"{name}[{i}]")
    else:
        digest.update(repr(value).encode())


def state_digest(state: dict[str, Any]) -> str:
    """SHA-256 over the content of a training state (all keys but ``sha256``)."""
    digest = hashlib.sha256()
    _update_digest(digest, {k: v for k, v in state.items() if k != "sha256"}, "")
    return digest.hexdigest()


def save_train_state(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``run_dir/checkpoints/last.pt`` (previous one kept until done).

    A write that fails (disk full, no permission) raises `RunError` and leaves the previous
    checkpoint in place.
    """
    target = checkpoint_path(run_dir)
    full = {"format": FORMAT, "version": VERSION, **state}
    full["sha256"] = state_digest(full)
    try:
        # through a Python file object: torch.save(path) reports a full disk as
        # RuntimeError("... unexpected pos ..."), a file object's write as OSError(ENOSPC)
        with atomic_path(target) as tmp, open(tmp, "wb") as file:
            torch.save(full, file)
    except OSError as err:
        full_disk = err.errno in (errno.ENOSPC, errno.EDQUOT)
        reason = "the disk is full" if full_disk else str(err)
        kept = "the previous checkpoint is kept" if target.is_file() else "no checkpoint yet"
        raise RunError(
            f"cannot write the training checkpoint {target}: {reason}; {kept}. Free space "
            f"(or fix the problem) and continue with: mlpmixer train --resume {run_dir}"
        ) from err
    return target


def load_train_state(run_dir: Path) -> dict[str, Any]:
    """Read ``run_dir/checkpoints/last.pt`` without unpickling code; `CheckpointError` if absent."""
    path = checkpoint_path(run_dir)
    if path.exists() and not path.is_file():  # a FIFO would block the read, a device never end
        raise CheckpointError(
            f"{path}: not a regular file (a FIFO, device or folder); restore the run's checkpoint"
        )
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir}: no training checkpoint at {path}; the run stopped before its first "
            "checkpoint (start it again) or this is not a run directory"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: not a readable training checkpoint ({err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mlpmixer training checkpoint")
    # before the checksum: hashing a stride-0 view makes it contiguous (terabytes, maybe)
    check_tensor_views({k.lstrip("."): v for k, v in _tensors(state, "")}, path)
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: training checkpoint version {state.get('version')!r} is not supported "
            f"(this mlpmixer writes {VERSION})"
        )
    if state.get("sha256") != state_digest(state):
        raise CheckpointError(
            f"{path}: the training checkpoint's checksum does not match its content (the "
            "file is damaged); restore a copy, or start the run again"
        )
    return state
