"""Which examples each process sees, in an order that depends only on (seed, epoch).

A training epoch is a seeded permutation cut into *global* batches of ``batch_size``
examples (the last incomplete one is dropped). Global batch ``i`` is the same set of
examples whatever the number of processes: process ``r`` of ``w`` takes every ``w``-th
example of it, and splits its share into ``grad_accum`` micro-batches. So one process with
batch B and two processes with batch B/2 each average gradients over exactly the same B
examples, and a run resumed at step ``k`` of an epoch continues with global batch ``k``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from ..data.shards import GlobalBatchStream, ShardDataset
from ..errors import ConfigError


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The example order of ``epoch``: a permutation seeded by (seed, epoch) only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=generator)


class TrainBatchSampler(Sampler[list[int]]):
    """Yields this process's micro-batches (lists of indices) for one epoch.

    Call `set_epoch(epoch, start_step)` before iterating; ``start_step`` skips the global
    batches already trained on (resume).
    """

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        grad_accum: int = 1,
    ) -> None:
        if batch_size % (world_size * grad_accum):
            raise ConfigError(
                f"train.batch_size={batch_size} must be divisible by processes x "
                f"grad_accum = {world_size} x {grad_accum}"
            )
        if batch_size > num_examples:  # a silently smaller batch would change the recipe
            raise ConfigError(
                f"train.batch_size={batch_size} is larger than the training set "
                f"({num_examples} examples); use a batch size of at most {num_examples}"
            )
        self.num_examples = num_examples
        self.batch_size = min(batch_size, num_examples - num_examples % (world_size * grad_accum))
        if self.batch_size <= 0:
            raise ConfigError(
                f"the data set has {num_examples} examples, fewer than processes x grad_accum "
                f"= {world_size * grad_accum}"
            )
        self.seed, self.rank, self.world_size, self.grad_accum = seed, rank, world_size, grad_accum
        self.epoch, self.start_step = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.batch_size

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // (self.world_size * self.grad_accum)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.grad_accum

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_permutation(self.num_examples, self.seed, self.epoch)
        m = self.micro_batch_size
        for step in range(self.start_step, self.steps_per_epoch):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            share = batch[self.rank :: self.world_size]
            for micro in range(self.grad_accum):
                yield share[micro * m : (micro + 1) * m].tolist()


class ShardSampler(Sampler[int]):
    """Evaluation: process ``r`` of ``w`` gets examples r, r+w, r+2w, ... (each exactly once)."""

    def __init__(self, num_examples: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, num_examples, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


class StreamBatchPlan:
    """`TrainBatchSampler`'s interface for a `GlobalBatchStream` (shards read in sequence).

    Global batch k is ``grad_accum`` groups of ``batch_size / grad_accum`` consecutive
    positions of the epoch order, the same for any number of processes (the last incomplete
    global batch is dropped, as for folders); process r of w takes the r-th of w contiguous
    blocks of each group as a micro-batch of ``batch_size / (w x grad_accum)``. `set_epoch` skips ``start_step`` global batches, so a
    resumed run continues at the exact sample where the interrupted one stopped, on any
    number of processes.
    """

    def __init__(
        self, dataset: ShardDataset, batch_size: int, seed: int, rank: int = 0,
        world_size: int = 1, grad_accum: int = 1,
    ) -> None:  # fmt: skip
        check = TrainBatchSampler(len(dataset), batch_size, seed, rank, world_size, grad_accum)
        self.num_examples, self.batch_size = check.num_examples, check.batch_size
        self.micro_batch_size, self.grad_accum = check.micro_batch_size, grad_accum
        self.steps_per_epoch = check.steps_per_epoch
        self.stream = GlobalBatchStream(
            dataset, seed=seed, rank=rank, world_size=world_size, batch_size=self.batch_size,
            grad_accum=grad_accum, steps=self.steps_per_epoch,
        )  # fmt: skip
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step
        self.stream.set_epoch(epoch, start_step * self.grad_accum)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.grad_accum
