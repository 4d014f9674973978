"""Training checkpoints: what a run needs to continue, stored without pickle (safetensors and JSON only).

    checkpoints/step_000001000/model.safetensors      the model, in ssl_robot.models.checkpoint's format, so
                                                      evaluation and deployment load it as is
    checkpoints/step_000001000/optimizer.safetensors  the optimizer's tensors (e.g. Adam moments and step counts)
    checkpoints/step_000001000/train_state.json       the step, the optimizer's param_groups and non-tensor state
    checkpoints/latest -> step_000001000              relative link to the newest complete checkpoint

A checkpoint is written under a temporary directory name and renamed into place, then `latest` is swapped (a new
link renamed over the old), then all but the newest few are deleted: a kill at any moment leaves `latest`
pointing at a complete checkpoint. No RNG state is stored: the loop reseeds every step from (seed, rank, step),
so a resumed run draws the same random numbers an uninterrupted one would.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn

from ssl_robot.models.checkpoint import load_weights, not_safetensors, save_checkpoint
from ssl_robot.atomic import fsync_dir, write_atomic
from ssl_robot.train.errors import TrainError

LATEST = 'latest'
MODEL_FILE = 'model.safetensors'
OPTIMIZER_FILE = 'optimizer.safetensors'
STATE_FILE = 'train_state.json'
STEP_PREFIX = 'step_'


def checkpoint_name(step: int) -> str:
    return f'{STEP_PREFIX}{step:09d}'


def optimizer_state_to_tensors(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into safetensors-ready tensors keyed 'param_index/name' and a JSON-able rest."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_index, param_state in state['state'].items():
        for name, value in param_state.items():
            if isinstance(value, Tensor):
                tensors[f'{param_index}/{name}'] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_index), {})[name] = value
    return tensors, {'param_groups': state['param_groups'], 'scalars': scalars}


def optimizer_state_from_tensors(tensors: dict[str, Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """The inverse of optimizer_state_to_tensors: a state_dict for optimizer.load_state_dict."""
    # JSON turned the integer parameter indices into strings; load_state_dict matches them as ints.
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        param_index, name = key.split('/', 1)
        state.setdefault(int(param_index), {})[name] = tensor
    for param_index, values in rest['scalars'].items():
        state.setdefault(int(param_index), {}).update(values)
    return {'state': state, 'param_groups': rest['param_groups']}


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint `latest` points to, or None before the first one."""
    link = Path(directory) / LATEST
    return link.resolve() if link.is_symlink() else None


def _unusable(checkpoint: Path, problem: str) -> TrainError:
    return TrainError(f'{problem}; the checkpoint {checkpoint} cannot be resumed from (delete it, and point '
                      f'{checkpoint.parent / LATEST} at an older one, to resume from that)')


def read_train_state(checkpoint: Path) -> dict[str, Any]:
    """The train_state.json of a checkpoint directory; TrainError naming the file if it is not a training state."""
    path = Path(checkpoint) / STATE_FILE
    try:
        state = json.loads(path.read_text())
        if not (isinstance(state, dict) and isinstance(state.get('step'), int) and isinstance(state.get('optimizer'),
                                                                                              dict)):
            raise ValueError('it lacks an integer step or the optimizer state')
    except (OSError, ValueError) as error:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise _unusable(Path(checkpoint), f'{path} is not a training state: {error}') from None
    return state


def checkpoint_step(checkpoint: Path) -> int:
    return read_train_state(checkpoint)['step']


def save_training_checkpoint(directory: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                             code_version: str, keep_last: int) -> Path:
    """Write the checkpoint of step, point `latest` at it and keep only the newest keep_last checkpoints."""
    directory = Path(directory)
    final = directory / checkpoint_name(step)
    latest = latest_checkpoint(directory)
    if latest is not None and latest.name == final.name:
        return final  # nothing trained since it was written
    temporary = directory / f'.{final.name}.{os.getpid()}.tmp'
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        save_checkpoint(temporary / MODEL_FILE, model, step=step, code_version=code_version)
        optimizer_tensors, optimizer_rest = optimizer_state_to_tensors(optimizer.state_dict())
        write_atomic(temporary / OPTIMIZER_FILE, safetensors.torch.save(optimizer_tensors))
        write_atomic(temporary / STATE_FILE, json.dumps({'step': step, 'optimizer': optimizer_rest}).encode())
        os.replace(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _point_latest_at(directory, final.name)
    _delete_old_checkpoints(directory, keep_last)
    return final


def _point_latest_at(directory: Path, name: str) -> None:
    temporary = directory / f'.{LATEST}.{os.getpid()}.tmp'
    temporary.unlink(missing_ok=True)
    os.symlink(name, temporary)
    os.replace(temporary, directory / LATEST)
    fsync_dir(directory)


def _delete_old_checkpoints(directory: Path, keep_last: int) -> None:
    checkpoints = sorted(path for path in directory.glob(f'{STEP_PREFIX}*') if path.is_dir())
    for old in checkpoints[:-keep_last]:
        shutil.rmtree(old)


def delete_unfinished_checkpoints(directory: Path, latest_step: int) -> None:
    """Remove what a killed run left behind: temporary directories, and checkpoints newer than `latest` (renamed
    into place, but killed before `latest` moved; the next save of that step would replace them anyway)."""
    for leftover in Path(directory).glob(f'.{STEP_PREFIX}*'):
        shutil.rmtree(leftover, ignore_errors=True)
    for checkpoint in Path(directory).glob(f'{STEP_PREFIX}*'):
        if checkpoint.name > checkpoint_name(latest_step):
            shutil.rmtree(checkpoint)


def load_training_checkpoint(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore model and optimizer from a checkpoint directory; returns its step."""
    checkpoint = Path(checkpoint)
    load_weights(checkpoint / MODEL_FILE, model)
    state = read_train_state(checkpoint)
    optimizer_file = checkpoint / OPTIMIZER_FILE
    try:
        optimizer_tensors = safetensors.torch.load_file(optimizer_file, device='cpu')
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise _unusable(checkpoint, not_safetensors(optimizer_file, error)) from None
    try:
        optimizer.load_state_dict(optimizer_state_from_tensors(optimizer_tensors, state['optimizer']))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise _unusable(checkpoint, f'{optimizer_file} and {STATE_FILE} do not hold a state of this optimizer: '
                                    f'{error!r}') from None
    return state['step']
