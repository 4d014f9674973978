"""A toy method for the training tests: a noisy linear regression registered as method 'toy', and a dataset whose
batch for step k depends only on k and the rank, so runs can be compared weight for weight.

Run as a script it is `ssl-robot train` with the toy registered and its dataset injected (for subprocess and
torchrun tests): python test/train_toy.py toy --bag DIR --out RUN_DIR --set ...
Environment: TOY_STARTED_FILE is created once the dataset has yielded STARTED_AFTER batches; TOY_SHARD_DIR
receives one JSON file per process with the DataShard it was given.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import IterableDataset

from ssl_robot.data.config import DataConfig
from ssl_robot.models.registry import METHODS, Method
from ssl_robot.train.config import TrainConfig
from ssl_robot.train.data_stream import DataShard

STARTED_AFTER = 3


@dataclass
class ToyConfig:
    width: int = 4
    """Inputs of the regression."""
    noise: float = 0.1
    """Std of the noise added to predictions: makes the loss depend on the per-step RNG."""


class ToyModel(nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.width, 1)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        x = batch['x']
        prediction = self.linear(x).squeeze(-1) + self.config.noise * torch.randn(x.shape[0], device=x.device)
        loss = F.mse_loss(prediction, batch['y'])
        return loss, {'prediction_std': prediction.std().item()}


TOY_METHOD = Method(ToyConfig, ToyModel, 'toy')


class ToyBatches(IterableDataset):
    """Batch k (k = start_step, start_step + 1, ...) is drawn from a generator seeded by (rank, k)."""

    def __init__(self, width: int, batch_size: int, rank: int, start_step: int, signal_at_step: int | None):
        self.width, self.batch_size, self.rank = width, batch_size, rank
        self.start_step, self.signal_at_step = start_step, signal_at_step

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        true_weights = torch.arange(1.0, self.width + 1)
        step = self.start_step
        while True:
            if step == self.signal_at_step:
                os.kill(os.getpid(), signal.SIGTERM)
            generator = torch.Generator().manual_seed(1_000_003 * self.rank + step)
            x = torch.randn(self.batch_size, self.width, generator=generator)
            yield {'x': x, 'y': x @ true_weights}
            step += 1
            if step - self.start_step == STARTED_AFTER and os.environ.get('TOY_STARTED_FILE'):
                Path(os.environ['TOY_STARTED_FILE']).touch()


def make_toy_dataset(method: str, bags: Sequence[Path], data: DataConfig, split: str, *, batch_size: int,
                     seed: int, shard: tuple[int, int], start_step: int = 0,
                     signal_at_step: int | None = None) -> ToyBatches:
    """A MakeDataset; train() callers can also pass the DataShard's start_step and a step at which to SIGTERM."""
    rank, world_size = shard
    if os.environ.get('TOY_SHARD_DIR'):
        record = Path(os.environ['TOY_SHARD_DIR']) / f'rank{rank}_seed{seed}.json'
        record.write_text(json.dumps({'rank': rank, 'world_size': world_size, 'seed': seed}))
    return ToyBatches(ToyConfig().width, batch_size, rank, start_step, signal_at_step)


def toy_batches(config: TrainConfig, signal_at_step: int | None = None) -> Callable[[DataShard], ToyBatches]:
    """train()'s make_batches for the toy: step-indexed batches, resumed at the shard's start step."""
    return lambda shard: make_toy_dataset(
        'toy', [], config.data, 'train', batch_size=config.batch_size, seed=shard.seed,
        shard=(shard.rank, shard.world_size), start_step=shard.start_step, signal_at_step=signal_at_step)


def main(argv: list[str]) -> int:
    METHODS['toy'] = TOY_METHOD
    from ssl_robot.train.cli import add_train_arguments, run_train
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return run_train(parser.parse_args(argv), make_dataset=make_toy_dataset)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
