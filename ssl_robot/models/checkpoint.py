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


ZIP_MAGIC = b'PK\x03\x04'
"""torch.save's default format: a zip archive whose data.pkl is a pickle."""
PICKLE_PROTOCOLS = range(2, 6)
"""A pickle of protocol 2 to 5 starts with 0x80 and the protocol number (torch's legacy format too)."""


def not_safetensors(path: Path, error: Exception, what: str = 'checkpoint') -> str:
    """Why safetensors could not read the file at path (which raised error), from its first bytes: pickled (refused),
    truncated, or something else. A safetensors file starts with the length of its JSON header (8 bytes, little
    endian), then that header."""
    try:
        size = path.stat().st_size
        with open(path, 'rb') as file:
            head = file.read(9)
    except OSError as unreadable:
        return f'{path} cannot be read: {unreadable}'
    if head.startswith(ZIP_MAGIC) or (head[:1] == b'\x80' and head[1:2] and head[1] in PICKLE_PROTOCOLS):
        return (f'{path} is not a safetensors {what} but a pickle{" (zip)" if head.startswith(ZIP_MAGIC) else ""}; '
                f'pickled files such as torch .pt are refused, since unpickling would run code from the file')
    if size < 8:
        return f'{path} is not a safetensors {what}: truncated to {size} bytes, fewer than its 8-byte header length'
    header_length = int.from_bytes(head[:8], 'little')
    if header_length > size - 8:
        return (f'{path} is not a safetensors {what}: header length {header_length} exceeds the file size '
                f'({size} bytes){"; truncated?" if head[8:9] == b"{" else ""}')
    return f'{path} is not a safetensors {what}, or is corrupt or truncated: {error}'


def read_metadata(path: Path, what: str = 'checkpoint') -> dict[str, str]:
    """The JSON header of a safetensors file, without loading its tensors; FileNotFoundError if there is no file,
    CheckpointError (not_safetensors) if it is not a safetensors file."""
    if not path.is_file():
        raise FileNotFoundError(f'{what} {path} does not exist')
    try:
        with safetensors.safe_open(path, framework='pt') as file:
            return file.metadata() or {}
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(not_safetensors(path, error, what)) from None


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU; CheckpointError (not_safetensors) if it is not one."""
    try:
        return safetensors.torch.load_file(path, device='cpu')
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(not_safetensors(path, error)) from None


def tensor_problems(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], holder: str) -> list[str]:
    """What keeps tensors from loading into a module whose state_dict is expected: each tensor missing, unexpected or
    of another shape (holder names the module in the message)."""
    problems = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f'missing tensors {missing}')
    if unexpected:
        problems.append(f'unexpected tensors {unexpected}')
    problems += [f'{name} has shape {tuple(tensors[name].shape)} in the file, {tuple(want.shape)} in {holder}'
                 for name, want in expected.items() if name in tensors and tensors[name].shape != want.shape]
    return problems


def read_checkpoint_header(path: str | os.PathLike) -> CheckpointHeader:
    """The header of a checkpoint, without loading its weights."""
    path = Path(path)
    metadata = read_metadata(path)
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
    tensors = load_tensors(path)
    problems = tensor_problems(model.state_dict(), tensors, 'the model')
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
