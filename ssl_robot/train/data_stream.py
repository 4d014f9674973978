"""The seam between training and ssl_robot.data: what the loop asks of a dataset, and the endless batch stream it
makes of one.

A dataset factory has the signature of MakeDataset. It returns batches, not single examples, because the TCN
family's batch composition (several times of a few episodes, see DataConfig) is part of the loss. It gets the
process's DataShard so that every process of a torchrun job reads different data, and so that a resumed run reads
a fresh stream instead of replaying the batches before the interruption.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from ssl_robot.data.config import DataConfig
from ssl_robot.train.errors import TrainError

Batch = dict[str, Tensor]


@dataclass(frozen=True)
class DataShard:
    """The part of the data stream one training process reads."""

    rank: int
    """This process, 0 .. world_size - 1: read a share of the episodes, or sample differently from the others."""
    world_size: int
    """Training processes in the job."""
    seed: int
    """Seed of this process's sampling; differs per rank and per resume step. DataLoader workers must mix in
    their worker id (or use torch.utils.data.get_worker_info().seed, which the loop derives from this one)."""
    start_step: int
    """Training step of the first batch: 0, or the step a resumed run continues from."""


class MakeDataset(Protocol):
    """ssl_robot.data.datasets.make_dataset, as `ssl-robot train` calls it."""

    def __call__(self, method: str, bags: Sequence[Path], data: DataConfig, split: str, *, batch_size: int,
                 seed: int, shard: tuple[int, int]) -> Iterable[Batch]:
        """Endless batches of batch_size examples for `method`'s model.forward from the bags, for split 'train'.

        seed: DataShard.seed. shard: (rank, world size), so that the processes of a job read different data.
        An IterableDataset is read through a DataLoader the loop makes (num_workers processes, batch_size=None, so
        it yields whole batches); each worker runs its own copy of __iter__, so it must split or vary its work by
        torch.utils.data.get_worker_info(). Any other iterable, e.g. a DataLoader of its own, is read as it is.
        One that ends is started again.
        """


def _ignore_interrupts(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; the training process handles it by checkpointing, and needs its
    # workers alive until the current step's batch is in.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def batch_stream(dataset: Iterable[Batch], num_workers: int, seed: int, pin_memory: bool) -> Iterator[Batch]:
    """The batches of dataset, forever; an IterableDataset is read by num_workers worker processes seeded from seed."""
    if isinstance(dataset, IterableDataset):
        dataset = DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                             worker_init_fn=_ignore_interrupts, generator=torch.Generator().manual_seed(seed))
    while True:
        empty = True
        for batch in dataset:
            empty = False
            yield batch
        if empty:
            raise TrainError('the dataset yielded no batch: check the bags and the data config')
