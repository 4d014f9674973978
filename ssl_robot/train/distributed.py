"""Which training process this is: a single process, or one of a torchrun (DDP) job, told apart by the WORLD_SIZE,
RANK and LOCAL_RANK variables torchrun sets. The same code runs both ways; only the main process (rank 0) writes."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ssl_robot.train.errors import TrainError


@dataclass(frozen=True)
class Process:
    rank: int
    """0 .. world_size - 1 across all nodes."""
    world_size: int
    """Training processes in the job; 1 without torchrun."""
    device: torch.device
    """The device this process trains on (GPU LOCAL_RANK under torchrun with CUDA)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def max(self, value: int) -> int:
        """The largest of value over all processes: how processes agree, e.g. to stop at the same step."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """values averaged over all processes (each must pass the same keys)."""
        if not self.distributed:
            return dict(values)
        keys = sorted(values)
        tensor = torch.tensor([float(values[key]) for key in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return dict(zip(keys, (tensor / self.world_size).tolist()))

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise TrainError(f'WORLD_SIZE is set, so {name} must be an int as torchrun sets it, '
                         f'got {os.environ.get(name)!r}') from None


def pick_device(choice: str, local_rank: int) -> torch.device:
    """'auto' | 'cpu' | 'cuda' -> the device of the process with this LOCAL_RANK."""
    if choice == 'cpu' or (choice == 'auto' and not torch.cuda.is_available()):
        return torch.device('cpu')
    if not torch.cuda.is_available():
        raise TrainError("device is 'cuda' but CUDA is not available here; use device=auto or device=cpu")
    if local_rank >= torch.cuda.device_count():
        raise TrainError(f'LOCAL_RANK {local_rank} has no GPU: this node has {torch.cuda.device_count()}')
    return torch.device('cuda', local_rank)


@contextmanager
def training_process(device_choice: str) -> Iterator[Process]:
    """This process's place in the job; under torchrun, joins the process group (NCCL on GPUs, gloo on the CPU)
    for the duration."""
    world_size = _env_int('WORLD_SIZE') if 'WORLD_SIZE' in os.environ else 1
    if world_size == 1:
        yield Process(rank=0, world_size=1, device=pick_device(device_choice, 0))
        return
    rank, local_rank = _env_int('RANK'), _env_int('LOCAL_RANK')
    device = pick_device(device_choice, local_rank)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    try:
        yield Process(rank=rank, world_size=world_size, device=device)
    finally:
        # DDP's hooks make reference cycles that would keep the group's gloo threads alive until interpreter
        # teardown, which then aborts the process (SIGABRT): collect them while that is still safe.
        gc.collect()
        dist.destroy_process_group()
