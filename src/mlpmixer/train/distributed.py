"""torch.distributed plumbing: process group from torchrun's environment, DDP/FSDP wrapping,
metric reduction and full (unsharded) state dicts for checkpoints.

Launch with ``torchrun --nproc_per_node N -m mlpmixer train ...``: torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address. The backend is NCCL when the run
uses CUDA and gloo on CPU. Without torchrun (or with one process) nothing is initialised and
every helper here is a no-op.

Collectives wait at most ``train.dist_timeout_s`` seconds (default `DEFAULT_TIMEOUT_S`, or
``$MLPMIXER_DIST_TIMEOUT_S``) for the other processes: torch's 30 minutes left a run with a
stopped peer silent for half an hour. A collective that times out or loses a peer becomes a
`RunError` naming the rank(s) that did not answer (`peers_checked`).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..envvars import positive_number
from ..errors import ConfigError, RunError
from ..fileio import process_alive

DEFAULT_TIMEOUT_S = 300.0  # a healthy step, eval or checkpoint save takes far less
TIMEOUT_ENV = "MLPMIXER_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_dist_info() -> DistInfo:
    """Rank and world size from torchrun's environment variables (single process otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> this process's GPU (``cuda:LOCAL_RANK``) if CUDA is available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device is cuda but no CUDA device is available")
        return torch.device("cuda", info.local_rank % torch.cuda.device_count())
    return torch.device(name)


def collective_timeout(timeout_s: float | None = None) -> float:
    """Seconds a collective waits: ``timeout_s`` if given, else $MLPMIXER_DIST_TIMEOUT_S, else 300."""
    if timeout_s is not None:
        return float(timeout_s)
    return positive_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def init_process_group(
    info: DistInfo, device: torch.device, timeout_s: float | None = None
) -> None:
    """Join torchrun's process group (NCCL on CUDA, gloo on CPU); no-op for one process."""
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    seconds = collective_timeout(timeout_s)
    options: dict[str, Any] = {"timeout": datetime.timedelta(seconds=seconds)}
    if device.type == "cuda":
        options["device_id"] = device
    _import_group_defaults()
    dist.init_process_group(backend=backend, **options)
    _TIMEOUT[0] = seconds
    _announce_process()


def _import_group_defaults() -> None:
    """Import ``torch.distributed.nn.functional`` before the process group exists.

    Its functions take ``group=group.WORLD`` as a default argument, evaluated when the module is
    first imported. DDP imports it while wrapping the model; imported then, ten defaults hold the
    default group for the rest of the process, so ``destroy_process_group`` cannot free it: gloo's
    worker threads outlive the run, and at interpreter exit one still dropping a tensor aborts the
    process ("terminate called without an active exception", exit -6). Imported now, the
    defaults hold None and the group is freed, its threads joined, once the run lets go of it.
    """
    import torch.distributed.nn.functional  # noqa: F401


def _store() -> Any:
    return dist.distributed_c10d._get_default_store()


def _announce_process() -> None:
    """Record this rank's host and pid in the rendezvous store, so that a survivor can tell a
    peer that died (`dead_ranks`) from one that is only busy inside a collective."""
    with contextlib.suppress(Exception):  # a store that cannot take it: the check says less
        _store().set(f"mlpmixer/process/{dist.get_rank()}", f"{socket.gethostname()} {os.getpid()}")


def dead_ranks() -> list[int]:
    """The ranks whose process on this host no longer runs (killed, crashed); ranks on other
    hosts, or whose record cannot be read, are not counted."""
    try:
        store = _store()
        store.set_timeout(datetime.timedelta(seconds=2))
        me, world = dist.get_rank(), dist.get_world_size()
        host, dead = socket.gethostname(), []
        for rank in range(world):
            if rank == me or not store.check([f"mlpmixer/process/{rank}"]):
                continue
            their_host, pid = store.get(f"mlpmixer/process/{rank}").decode().rsplit(" ", 1)
            if their_host == host and not process_alive(int(pid)):
                dead.append(rank)
        return dead
    except Exception:  # the store lives with a peer that is gone: nothing more to learn
        return []


_TIMEOUT = [DEFAULT_TIMEOUT_S]  # of the current process group, for the messages
# how torch's backends word a peer that stopped answering or went away
_BACKENDS = ("gloo", "nccl", "processgroup", "c10d")
_TIMED_OUT = ("timed out", "timeout")
_LOST = ("connection closed", "connection reset", "broken pipe", "connection refused",
         "socket closed", "end of file", "read error", "write error")  # fmt: skip


def silent_ranks(grace_s: float) -> list[int]:
    """A roll call through the rendezvous store: the ranks that do not check in within
    ``grace_s`` seconds (every live process that met the failure checks in here too)."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(datetime.timedelta(seconds=grace_s))
        me, world = dist.get_rank(), dist.get_world_size()
        store.set(f"mlpmixer/answered/{me}", "1")
        deadline = time.monotonic() + grace_s
        missing = [r for r in range(world) if r != me]
        while missing and time.monotonic() < deadline:
            missing = [r for r in missing if not store.check([f"mlpmixer/answered/{r}"])]
            time.sleep(0.1)
        return missing
    except Exception:  # the store lives with a peer that is gone: nothing more to learn
        return []


def explain_collective_failure(err: BaseException) -> RunError | None:
    """A `RunError` naming the silent or lost ranks for a failed collective, else None."""
    text = str(err).lower()
    # gloo raises plain RuntimeErrors: known by their source path (not a DataLoader timeout)
    collective = isinstance(err, dist.DistError) or any(w in text for w in _BACKENDS)
    timed_out = any(word in text for word in _TIMED_OUT)
    lost = any(word in text for word in _LOST)
    if not (dist.is_initialized() and collective and (timed_out or lost)):
        return None
    seconds = _TIMEOUT[0]
    rank, world = dist.get_rank(), dist.get_world_size()
    silent = silent_ranks(min(max(seconds, 1.0), 30.0))
    who = f"rank(s) {', '.join(map(str, silent))} of {world}" if silent else "another process"
    if timed_out and not lost:
        what = (
            f"{who} did not answer within {seconds:g} s (stopped, hung, or much slower); "
            f"if they are only slow, raise train.dist_timeout_s (or ${TIMEOUT_ENV})"
        )
    else:
        what = f"lost {who}: the process ended or was killed (torchrun's log names how)"
    return RunError(
        f"rank {rank}: a collective operation failed: {what}; continue from the last "
        "checkpoint with --resume RUN_DIR"
    )


@contextlib.contextmanager
def peers_checked() -> Iterator[None]:
    """Turn a collective that timed out or lost a peer into a `RunError` naming the ranks."""
    try:
        yield
    except RuntimeError as err:  # DistBackendError and gloo's errors are RuntimeErrors
        explained = explain_collective_failure(err)
        if explained is None:
            raise
        raise explained from err


def destroy_process_group() -> None:
    """Leave the process group, and let it go: once the run's wrappers are freed, nothing holds
    it, so gloo's threads are joined here rather than left running into interpreter exit."""
    if dist.is_initialized():
        dist.destroy_process_group()
        _drop_dtensor_caches()


def _drop_dtensor_caches() -> None:
    """Empty the caches of torch's DTensor, which FSDP2's sharded parameters are made of.

    DTensor caches sharding decisions, redistribution plans and mesh topologies in lru caches
    (and one in C++) keyed by their device mesh, and a mesh holds the process group: left
    alone, they keep the group, and gloo's threads, alive to the end of the process (see
    `_import_group_defaults` for why that matters). The caches only save recomputation.
    """
    if "torch.distributed.tensor" not in sys.modules:
        return  # no DTensor was made
    redistribute = sys.modules.get("torch.distributed.tensor._redistribute")
    for clear in (
        getattr(torch._C, "_clear_DTensor_sharding_propagator_cache", None),
        getattr(redistribute, "clear_redistribute_planner_cache", None),  # a dict, not lru
    ):
        if clear is not None:
            clear()
    for obj in gc.get_objects():  # module-level, class-level and per-instance lru caches alike
        if isinstance(obj, functools._lru_cache_wrapper) and str(
            getattr(obj, "__module__", "")
        ).startswith("torch.distributed.tensor"):
            obj.cache_clear()
    gc.collect()  # the sharded modules and their meshes sit in reference cycles


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device, parallel: str) -> nn.Module:
    """DDP (replicated weights, averaged gradients) or FSDP2 ``fully_shard`` (sharded weights)."""
    if not info.enabled:
        return model
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        base = unwrap(model)  # under torch.compile, shard the module it wraps
        for block in base.blocks:  # type: ignore[union-attr]
            fully_shard(block)  # one unit per block: gathers one block's weights at a time
        fully_shard(base)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes (in place on a copy); identity for one process."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_max(values: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every process (e.g. the run directory name)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, parallel: str, everywhere: bool = False
) -> tuple[dict, dict]:
    """(model state, optimizer state), unsharded. Collective under FSDP, where the states
    land in CPU memory of rank 0 only, unless ``everywhere`` (then on every rank's device)."""
    if parallel == "fsdp" and dist.is_initialized():
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=not everywhere)
        return get_state_dict(model, optimizer, options=options)
    return unwrap(model).state_dict(), optimizer.state_dict()


def load_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict,
    parallel: str,
) -> None:  # fmt: skip
    """Inverse of `full_state`."""
    if parallel == "fsdp" and dist.is_initialized():
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
        set_state_dict(
            model,
            optimizer,
            model_state_dict=model_state,
            optim_state_dict=optim_state,
            options=options,
        )
        return
    unwrap(model).load_state_dict(model_state)
    optimizer.load_state_dict(optim_state)
