"""The one holder of a model for live inference, used by every node that runs a model. Pure: no rclpy.

- LoadedModel: a checkpoint loaded for inference (eval() mode, CUDA when present), named by a model id that changes
  whenever the weights do, and swapped for the file's new contents when the file changes, so a retrained checkpoint is
  picked up without restarting the graph.
- ModelLoader: a node's model before and after any checkpoint could be loaded. A missing or unloadable checkpoint
  is never fatal: the node starts, reports why it has no model, and serves as soon as the file loads.
- model_input: a camera frame as the model was trained to see it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ssl_robot
from ssl_robot import images
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.models.checkpoint import CheckpointError, CheckpointHeader, load_checkpoint, read_metadata
from ssl_robot.models.encoders import default_device
from ssl_robot.model_ids import ModelId
from ssl_robot.models.registry import METHODS

CHECKPOINTS_DIR = Path(ssl_robot.__file__).resolve().parent / 'checkpoints'
"""Where the package ships its default checkpoints (scripts/train-default-checkpoints writes them)."""


def set_torch_threads(threads: int) -> None:
    """Run this process's torch ops on `threads` threads; 0 keeps torch's default, one per core.

    A node runs a small model on one message at a time while the other nodes use the same cores: an op split over
    busy cores waits for its slowest thread, so on a shared 2-core machine a set takes several times longer on two
    threads than on one (bench/bench_online.py). ValueError for anything but an int >= 0."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f'torch threads must be an int >= 0 (0 = one per core), got {threads!r}')
    if threads:
        torch.set_num_threads(threads)


def require_known_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f'unknown method {method!r}: expected one of {sorted(METHODS)}')


def default_checkpoint(method: str) -> Path:
    """The shipped checkpoint of a method, ssl_robot/checkpoints/<method>.safetensors; FileNotFoundError saying
    how to get one if this install has none."""
    require_known_method(method)
    path = CHECKPOINTS_DIR / f'{method}.safetensors'
    if not path.is_file():
        raise FileNotFoundError(f'no default {method} checkpoint: {path} does not exist; give a checkpoint file, or '
                                f'make the defaults with scripts/train-default-checkpoints')
    return path


def checkpoint_path(path: str | os.PathLike) -> Path:
    """The file a checkpoint parameter names: the path as given, except that a bare file name which is not in the
    working directory names a shipped checkpoint of ssl_robot/checkpoints/ if there is one (e.g.
    'rl_reach_vae.safetensors', the RL task camera's beta-VAE, which launch files can name wherever the package is
    installed)."""
    path = Path(path)
    shipped = CHECKPOINTS_DIR / path.name
    if path.parent == Path('.') and not path.exists() and shipped.is_file():
        return shipped
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_model_id(path: str | os.PathLike) -> str:
    """The model id a node that loads the checkpoint at path puts on its outputs, read from the file's header and
    bytes without building the model; FileNotFoundError or CheckpointError if it is no checkpoint."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        method, step = metadata['method'], metadata['step']
    except KeyError as missing:
        raise CheckpointError(f'{path} has no {missing} in its header: not an ssl_robot checkpoint') from None
    try:
        return ModelId.of_checkpoint(method, path.name, int(step), file_sha256(path)).format()
    except ValueError as error:
        raise CheckpointError(f'{path} header gives no model id (method {method!r}, step {step!r}): {error}') from None


@dataclass(frozen=True)
class LoadedCheckpoint:
    """One load of a checkpoint file: the model and what identifies the file contents it came from."""

    model: nn.Module
    header: CheckpointHeader
    model_id: str
    """ModelId.format(), e.g. 'tcn:tcn.safetensors:step1200:3fa9c2d1e0b4': the text that goes on messages."""
    sha256: str
    stat_key: tuple[int, ...]
    """(inode, size, mtime_ns, ctime_ns) of the file, taken before it was read."""


class LoadedModel:
    """A checkpoint of any registered method loaded for inference, reloaded when its file changes.

    The loaded state is one immutable LoadedCheckpoint replaced as a whole: a reload builds the new model
    completely before swapping it in, so a caller holding `current` never sees half of each, and a failed
    reload leaves the old model serving.
    """

    def __init__(self, path: str | os.PathLike, method: str, device: torch.device | str | None = None) -> None:
        require_known_method(method)
        self.path = checkpoint_path(path)
        self.method = method
        self.device = torch.device(device) if device is not None else default_device()
        self.current = self._load()

    @property
    def model(self) -> nn.Module:
        return self.current.model

    @property
    def config(self) -> Any:
        return self.current.model.config

    @property
    def model_id(self) -> str:
        return self.current.model_id

    def _stat_key(self) -> tuple[int, ...]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f'checkpoint {self.path} does not exist') from None
        # The inode changes on every atomic replace (save_checkpoint writes a new file and renames it), even
        # within one tick of a coarse filesystem clock.
        return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns

    def _load(self) -> LoadedCheckpoint:
        stat_key = self._stat_key()
        sha256 = file_sha256(self.path)
        model, header = load_checkpoint(self.path, method=self.method, device=self.device)
        model_id = ModelId.of_checkpoint(header.method, self.path.name, header.step, sha256).format()
        return LoadedCheckpoint(model, header, model_id, sha256, stat_key)

    def reload_if_changed(self) -> bool:
        """Load the file again if its contents changed since the current model was loaded; True if a new model
        was swapped in.

        The file's inode, size and times decide whether to look: if none changed, the contents are taken as
        unchanged without reading the file. A change is confirmed by the content hash (a file rewritten with the
        same bytes keeps the current model). Raises FileNotFoundError if the file is gone and CheckpointError if
        it holds no usable checkpoint of this method, keeping the current model; the next call tries again. A
        file replaced while it was being read looks changed at the next call and is loaded then.
        """
        current = self.current
        stat_key = self._stat_key()
        if stat_key == current.stat_key:
            return False
        if file_sha256(self.path) == current.sha256:
            self.current = dataclasses.replace(current, stat_key=stat_key)
            return False
        self.current = self._load()
        return True



class ModelUnavailable(RuntimeError):
    """A request needs the model, but no checkpoint has loaded yet; the message says why."""


class ModelLoader:
    """A node's model: its checkpoint loaded for inference when it can be, and kept up to date with the file.

    Unlike LoadedModel, it exists before any checkpoint could be loaded (the file is still being trained, copied,
    or the default one was never made), so a node can start, say why it has no model and pick it up once the file
    appears. An empty checkpoint path means the shipped default of the method, looked up at every attempt.
    """

    def __init__(self, checkpoint: str | os.PathLike, method: str, device: torch.device | str | None = None) -> None:
        require_known_method(method)
        self.checkpoint = Path(checkpoint) if str(checkpoint) else None
        self.method = method
        self.device = torch.device(device) if device is not None else default_device()
        self.loaded: LoadedModel | None = None
        self.error = 'no load attempted yet'

    def refresh(self) -> bool:
        """Load the checkpoint if none is loaded, else reload it if the file changed; True if a new model now serves.

        Raises FileNotFoundError or CheckpointError naming the file and what is wrong with it, keeping the model
        that served before (if any); the next call tries again."""
        try:
            if self.loaded is None:
                path = self.checkpoint if self.checkpoint is not None else default_checkpoint(self.method)
                self.loaded = LoadedModel(path, self.method, self.device)
                changed = True
            else:
                changed = self.loaded.reload_if_changed()
        except (CheckpointError, FileNotFoundError) as error:
            self.error = str(error)
            raise
        self.error = ''
        return changed

    def refresh_reporting(self, problems: ProblemLog, announce: Callable[[str], None]) -> bool:
        """refresh() for a node's timer: a newly loaded model is announced (True returned), a failed load reported to
        problems as a 'checkpoint' problem (False)."""
        previous = self.model_id
        try:
            changed = self.refresh()
        except (CheckpointError, FileNotFoundError) as error:
            problems.report('checkpoint', f'{error}; still using {previous}')
            return False
        if changed:
            announce(f'checkpoint loaded: {previous} -> {self.model_id}')
        return changed

    def require(self) -> LoadedModel:
        """The loaded model; ModelUnavailable saying why there is none."""
        if self.loaded is None:
            raise ModelUnavailable(self.require_error())
        return self.loaded

    def require_error(self) -> str:
        """Why require() would fail: no model loaded yet, and the last load's error."""
        return f'no {self.method} model loaded: {self.error}'

    @property
    def model_id(self) -> str:
        return self.loaded.model_id if self.loaded is not None else 'none'




def model_input(loaded: LoadedModel, frame: np.ndarray) -> torch.Tensor:
    """(1, 3, S, S) float tensor on the model's device: the frame as the model was trained to see it
    (images.model_input at the model's image_size)."""
    return images.model_input(frame, loaded.config.image_size).to(loaded.device)
