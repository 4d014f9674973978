"""The training loop: one function, the same for a single process and for every process of a torchrun job.

Resuming is the default: if RUN_DIR has a checkpoint, training continues from it. Randomness is a function of
(seed, rank, step): every step reseeds torch, numpy and random, and the data stream is seeded from the step it
starts at, so an interrupted and resumed run repeats no batch and, on data that depends only on the step, ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ssl_robot.models.registry import build_model
from ssl_robot.train.checkpoint import (delete_unfinished_checkpoints, latest_checkpoint, load_training_checkpoint,
                                        save_training_checkpoint)
from ssl_robot.train.config import TrainConfig
from ssl_robot.train.data_stream import Batch, DataShard, batch_stream
from ssl_robot.train.distributed import Process, training_process
from ssl_robot.train.run_dir import RunDir, code_version, version_label
from ssl_robot.train.stop_signals import StopSignals

# Seed-sequence tags that keep the data stream's seeds apart from the per-step seeds of the same (seed, rank, step).
STEP_STREAM, DATA_STREAM = 0, 1
TIME_BUDGET_STOP = 1  # stop codes agreed between processes: 0 go on, 1 time budget, 128 + N signal N


@dataclass(frozen=True)
class TrainResult:
    step: int
    """The step training stopped at; a checkpoint of it is in the run directory."""
    exit_code: int
    """0 when it reached config.steps or its time budget; 128 + N when stopped by signal N."""


def derived_seed(*parts: int) -> int:
    """A 32-bit seed mixing parts, statistically independent of the seeds of other parts."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)  # between progress bar updates, and off stdout


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {key: value.to(device, non_blocking=True) if isinstance(value, Tensor) else value
            for key, value in batch.items()}


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of update `step` (0 for the first) under config.lr_schedule."""
    if config.lr_schedule == 'cosine':
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    return config.lr


def train(config: TrainConfig, make_batches: Callable[[DataShard], Iterable[Batch]], out: Path) -> TrainResult:
    """Train config.method's model on make_batches(shard) into run directory out, resuming from its latest
    checkpoint; returns at config.steps, past the time budget or on SIGINT/SIGTERM, each time with a checkpoint."""
    run = RunDir(Path(out))
    changes = run.changes_from_saved(config)
    with (training_process(config.device) as process, run.lock() if process.is_main else nullcontext(),
          StopSignals() as signals):
        # A function of its own, so that the model and its DDP wrapper are gone before the process group is.
        return _train(config, make_batches, run, changes, process, signals)


def _train(config: TrainConfig, make_batches: Callable[[DataShard], Iterable[Batch]], run: RunDir,
           changes: list[str], process: Process, signals: StopSignals) -> TrainResult:
    seed_everything(config.seed)  # the same initial weights in every process
    model = build_model(config.method, config.model).to(process.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    resume_from = latest_checkpoint(run.checkpoints)
    step = load_training_checkpoint(resume_from, model, optimizer) if resume_from else 0
    shard = DataShard(process.rank, process.world_size, derived_seed(config.seed, process.rank, step, DATA_STREAM),
                      step)
    # Made before the start is recorded, so that bags that cannot be used do not claim RUN_DIR for this method.
    batches = batch_stream(make_batches(shard), config.num_workers, shard.seed,
                           pin_memory=process.device.type == 'cuda')
    version = code_version()
    if process.is_main:
        delete_unfinished_checkpoints(run.checkpoints, step)
        run.record_start(config, step, version)
        if resume_from:
            _say(f'resuming {run.path} from step {step}' if step < config.steps else
                 f'{run.path} is already at step {step}: raise steps (now {config.steps}) to train on')
        for change in changes:
            _say(f'changed since the saved config: {change}')
    trainee = DistributedDataParallel(model) if process.distributed else model
    # purge_step hides what a killed run logged past its last checkpoint: those steps are trained again.
    writer = SummaryWriter(run.tensorboard, purge_step=step + 1 if step else None) if process.is_main else None
    with writer or nullcontext(), tqdm(total=config.steps, initial=step, unit='step',
                                       disable=not process.is_main) as progress:
        started = last_saved = time.monotonic()
        stop_code = 0

        while step < config.steps and not stop_code:
            batch = _to_device(next(batches), process.device)
            seed_everything(derived_seed(config.seed, process.rank, step, STEP_STREAM))
            loss, metrics = trainee(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or float('inf'))
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group['lr'] = lr
            optimizer.step()
            step += 1
            progress.update()

            if step % config.log_every == 0:
                scalars = process.mean({'loss': loss.item(), **metrics, 'grad_norm': grad_norm.item(), 'lr': lr})
                if writer is not None:
                    for name, value in scalars.items():
                        writer.add_scalar(f'train/{name}', value, step)
                    progress.set_postfix(loss=f'{scalars["loss"]:.4g}')
            over_budget = config.max_minutes is not None and time.monotonic() - started >= 60 * config.max_minutes
            stop_code = process.max(128 + signals.received if signals.received else TIME_BUDGET_STOP * over_budget)
            checkpoint_due = (config.checkpoint_every and step % config.checkpoint_every == 0) or (
                config.checkpoint_every_s and time.monotonic() - last_saved >= config.checkpoint_every_s)
            if process.is_main and (checkpoint_due or stop_code or step == config.steps):
                save_training_checkpoint(run.checkpoints, step, model, optimizer, version_label(version),
                                         config.keep_checkpoints)
                last_saved = time.monotonic()

    # The others wait for the main process's checkpoint: torchrun ends a job when any process exits.
    process.barrier()
    if stop_code and process.is_main:
        cause = f'{config.max_minutes} min budget spent' if stop_code == TIME_BUDGET_STOP else \
            f'by {signal.Signals(stop_code - 128).name}'
        _say(f'stopped at step {step} of {config.steps}, {cause}: run the same command to continue')
    return TrainResult(step=step, exit_code=0 if stop_code == TIME_BUDGET_STOP else stop_code)
