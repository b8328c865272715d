"""torch.distributed plumbing: process group from torchrun's environment, DDP/FSDP wrapping,
metric reduction and full (unsharded) state dicts for checkpoints.

Launch with ``torchrun --nproc_per_node N -m mlpmixer train ...``: torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address. The backend is NCCL when the run
uses CUDA and gloo on CPU. Without torchrun (or with one process) nothing is initialised and
every helper here is a no-op.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


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


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """Join torchrun's process group (NCCL on CUDA, gloo on CPU); no-op for one process."""
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    options: dict[str, Any] = {"timeout": datetime.timedelta(minutes=30)}
    if device.type == "cuda":
        options["device_id"] = device
    dist.init_process_group(backend=backend, **options)


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


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
