"""Model checkpoints: one safetensors file whose JSON header also records the method, the config, the code version
and the training step. Written atomically; read without ever unpickling anything.

    save_checkpoint('tcn.safetensors', model, step=1000, code_version=ssl_robot.__version__)
    model, header = load_checkpoint('tcn.safetensors', method='tcn')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from ..atomic import write_atomic
from .config import config_to_dict
from .encoders import default_device
from .registry import build_model, method_of

FORMAT = 'ssl_robot.checkpoint/1'
HEADER_KEYS = ('format', 'method', 'config', 'code_version', 'step')


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the file and what is wrong."""


@dataclass(frozen=True)
class CheckpointHeader:
    method: str
    """Registry name of the model, e.g. 'tcn'."""
    config: dict[str, Any]
    """The model config as plain values (config_from_dict(method, config) rebuilds it)."""
    code_version: str
    """Version of the code that wrote the checkpoint."""
    step: int
    """Training step at which it was written."""


def save_checkpoint(path: str | os.PathLike, model: nn.Module, step: int, code_version: str) -> Path:
    """Write model's weights and header to path (conventionally *.safetensors); returns the path."""
    path = Path(path)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f'step must be an int >= 0, got {step!r}')
    metadata = {'format': FORMAT, 'method': method_of(model), 'config': json.dumps(config_to_dict(model.config)),
                'code_version': str(code_version), 'step': str(step)}
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    write_atomic(path, safetensors.torch.save(tensors, metadata=metadata))
    return path


def read_checkpoint_header(path: str | os.PathLike) -> CheckpointHeader:
    """The header of a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        with safetensors.safe_open(path, framework='pt') as file:
            metadata = file.metadata() or {}
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f'{path} is not a safetensors checkpoint ({error}); pickled files such as torch .pt '
                              f'are refused, since unpickling would run code from the file') from None
    missing = [key for key in HEADER_KEYS if key not in metadata]
    if missing:
        raise CheckpointError(f'{path} is a safetensors file but not an ssl_robot checkpoint: its header lacks '
                              f'{missing}')
    if metadata['format'] != FORMAT:
        raise CheckpointError(f'{path} has checkpoint format {metadata["format"]!r}; this code reads {FORMAT!r}')
    try:
        return CheckpointHeader(metadata['method'], json.loads(metadata['config']), metadata['code_version'],
                                int(metadata['step']))
    except ValueError as error:
        raise CheckpointError(f'{path} has a malformed header: {error}') from None


def _check_method(path: Path, header: CheckpointHeader, method: str) -> None:
    if header.method != method:
        raise CheckpointError(f'{path} holds a {header.method!r} checkpoint, not {method!r}')


def load_weights(path: str | os.PathLike, model: nn.Module) -> CheckpointHeader:
    """Load a checkpoint's weights into an existing model, refusing one of another method or with any tensor
    missing, unexpected or of another shape (all listed in one message)."""
    path = Path(path)
    header = read_checkpoint_header(path)
    _check_method(path, header, method_of(model))
    tensors = safetensors.torch.load_file(path, device='cpu')
    expected = model.state_dict()
    problems = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f'missing tensors {missing}')
    if unexpected:
        problems.append(f'unexpected tensors {unexpected}')
    problems += [f'{name} has shape {tuple(tensors[name].shape)} in the file, {tuple(want.shape)} in the model'
                 for name, want in expected.items() if name in tensors and tensors[name].shape != want.shape]
    if problems:
        configs = ''
        if header.config != config_to_dict(model.config):
            configs = f' (file config {header.config}, model config {config_to_dict(model.config)})'
        raise CheckpointError(f'{path} does not fit this {header.method!r} model: {"; ".join(problems)}{configs}')
    model.load_state_dict(tensors)
    return header


def load_checkpoint(path: str | os.PathLike, method: str | None = None,
                    device: torch.device | str | None = None) -> tuple[nn.Module, CheckpointHeader]:
    """Build the model a checkpoint describes, with its weights, in eval() mode on device (default: CUDA when
    present). With method given, a checkpoint of any other method is refused."""
    path = Path(path)
    header = read_checkpoint_header(path)
    if method is not None:
        _check_method(path, header, method)
    try:
        model = build_model(header.method, header.config)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f'{path}: its header does not describe a model this code can build: {error}') from None
    load_weights(path, model)
    return model.to(device if device is not None else default_device()).eval(), header
