"""What every family of `ssl-robot eval` shares: options, the trained run under test, the held-out frames, figures and
confidence intervals (ssl_robot.train.evaluate runs the families and writes the report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from ssl_robot.data.datasets import episode_frames
from ssl_robot.data.recordings import LABEL_KEYS, Recordings
from ssl_robot.data.samplers import EpisodeFrames
from ssl_robot.images import model_pixels
from ssl_robot.models import METHODS, build_model, load_weights, method_spec, read_checkpoint_header
from ssl_robot.models.registry import TCN_FAMILY, methods_of
from ssl_robot.resources import share_path
from ssl_robot.train.checkpoint import MODEL_FILE, latest_checkpoint
from ssl_robot.train.config import TrainConfig, config_from_dict, read_yaml_mapping
from ssl_robot.train.intervals import ratio_interval
from ssl_robot.train.report import ReportRow
from ssl_robot.train.run_dir import RunDir


BASELINE_RUNS = {'svtcn': methods_of(TCN_FAMILY, multi_view=True)}
"""--baseline NAME=RUN_DIR: the method of the run it names -> the methods it is a baseline for."""
TRAINED, RANDOM, PIXELS, SVTCN, MEAN_IMAGE, FIRST_FRAME, CHANCE = (
    'trained', 'random encoder', 'raw pixels', 'single-view TCN', 'mean image', 'first frame', 'chance')


READ_WINDOW_FRAMES = 32
"""Frames read from a bag at a time, at its own resolution, before they are resized for the models."""


class EvalError(ValueError):
    """An evaluation input that cannot be used; the message names it and what is wrong."""


@dataclass(frozen=True)
class EvalOptions:
    """How an evaluation runs; the defaults suit the paper-sized models on a CPU."""

    batch_size: int = 64
    """Images (mfTCN: clips) per forward pass."""
    retrieval_batch: int = 8
    """Grasp2Vec: grasps per retrieval batch, the candidates of each retrieval (chance 1 / retrieval_batch)."""
    knn_k: int = 5
    """Neighbours of the kNN attribute classifier."""
    pixel_size: int = 16
    """Raw pixel baseline and goal consistency: frames are area-downsampled to pixel_size x pixel_size RGB."""
    max_probe_frames: int = 1000
    """kNN probe: at most this many times per half, evenly spaced over its episodes (each gives one row per
    view), which bounds the probe's distance matrix however much data there is."""
    goals_per_episode: int = 16
    """VAEs: goals imagined per held-out episode."""
    references_per_episode: int = 50
    """VAEs: frames per episode, evenly spaced, that imagined goals are matched against."""
    plot_examples: int = 6
    """Examples in the image grids (VAE reconstructions and goals, Grasp2Vec heatmaps)."""

    def __post_init__(self) -> None:
        minimum = {'retrieval_batch': 2}
        for option in fields(self):
            value = getattr(self, option.name)
            least = minimum.get(option.name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f'EvalOptions.{option.name} must be an int >= {least}, got {value!r}')


@dataclass(frozen=True)
class TrainedRun:
    """A training run's config and the model of its latest checkpoint, in eval() mode."""

    path: Path
    config: TrainConfig
    checkpoint: Path
    """The model.safetensors loaded."""
    step: int
    model: nn.Module

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def image_size(self) -> int:
        return self.config.model.image_size


def load_run(run_dir: str | Path, device: torch.device, *, role: str = 'RUN_DIR',
             methods: Sequence[str] = tuple(METHODS)) -> TrainedRun:
    """The run in run_dir with its latest checkpoint's weights on device, or a checkpoint file itself (see
    _load_checkpoint_file); role names the argument in errors, and a run of a method outside methods is refused."""
    path = Path(run_dir)
    run = RunDir(path)
    if path.is_file():
        return _load_checkpoint_file(path, device, role, methods)
    if not path.is_dir():
        raise EvalError(f'{role} {path} is not a directory')
    if not run.config_file.is_file():
        raise EvalError(f'{role} {path} is not a training run: it has no config.yaml')
    values = read_yaml_mapping(run.config_file)
    method = values.get('method')
    if method not in METHODS:
        raise EvalError(f'{run.config_file}: method {method!r} is not one of {sorted(METHODS)}')
    if method not in methods:
        raise EvalError(f'{role} {path} is a {method!r} run; it must be one of {", ".join(methods)}')
    try:
        config = config_from_dict(method, method_spec(method).config_class, values)
    except ValueError as err:
        raise EvalError(f'{run.config_file}: {err}') from None
    latest = latest_checkpoint(run.checkpoints)
    if latest is None:
        raise EvalError(f'{role} {path} has no checkpoint ({run.checkpoints / "latest"} is missing): train it first')
    checkpoint = latest / MODEL_FILE
    if not checkpoint.is_file():
        raise EvalError(f'{checkpoint} does not exist: {run.checkpoints / "latest"} points at an incomplete '
                        f'checkpoint')
    model = build_model(method, config.model)
    header = load_weights(checkpoint, model)  # refuses another method or shape, and anything but safetensors
    return TrainedRun(path, config, checkpoint, header.step, model.to(device).eval())


def _load_checkpoint_file(path: Path, device: torch.device, role: str, methods: Sequence[str]) -> TrainedRun:
    """A checkpoint file (a shipped one, or a run's model.safetensors) as a run: the model its header describes, and
    the data settings (cameras, views, clips) of config/train/METHOD.yaml, the config the shipped checkpoints are
    trained with, or the defaults when there is none."""
    header = read_checkpoint_header(path)
    if header.method not in methods:
        raise EvalError(f'{role} {path} is a {header.method!r} checkpoint; it must be one of {", ".join(methods)}')
    train_config = share_path('config', 'train', f'{header.method}.yaml')
    values = read_yaml_mapping(train_config) if train_config.is_file() else {}
    try:
        config = config_from_dict(header.method, method_spec(header.method).config_class,
                                  {**values, 'model': header.config})
    except ValueError as err:
        raise EvalError(f'{role} {path}: {err}') from None
    model = build_model(header.method, config.model)
    load_weights(path, model)
    return TrainedRun(path, config, path, header.step, model.to(device).eval())


class Evaluation(NamedTuple):
    rows: list[ReportRow]
    plots: dict[str, Figure]
    meta: dict[str, Any]


def recorded_rigs(recordings: Recordings) -> list[str]:
    """The camera rigs the episodes of the recordings name (none for bags recorded before rigs were)."""
    return sorted({episode.rig for episode in recordings.episodes if episode.rig})


def episode_images(recordings: Recordings, episode: int,
                   sizes: set[int]) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """The frames of one episode at each size, (T, V, S, S, 3) uint8, and its (T, 3) ground-truth labels in
    LABEL_KEYS order (None when the recordings were indexed without labels). Frames are read at the bag's
    resolution and resized as make_dataset resizes them, so each model sees what it was trained on."""
    resized: dict[int, list[np.ndarray]] = {size: [] for size in sizes}
    labels = []
    for frame in episode_frames(recordings, episode, window_samples=READ_WINDOW_FRAMES):
        for size, frames in resized.items():
            frames.append(model_pixels(frame.images, size))
        if frame.labels is not None:
            labels.append([frame.labels[key] for key in LABEL_KEYS])
    return {size: np.stack(frames) for size, frames in resized.items()}, np.array(labels) if labels else None


def episodes_with_frames(recordings: Recordings, minimum: int) -> list[EpisodeFrames]:
    """The episodes with at least minimum synchronized frames; an EvalError naming the bags if there are none."""
    usable = [frames for frames in recordings.frames if len(frames) >= minimum]
    if not usable:
        longest = max((len(frames) for frames in recordings.frames), default=0)
        needs = f'the {minimum} frames the first full clip spans' if minimum > 1 else 'frames'
        raise EvalError(f'{", ".join(map(str, recordings.bags))}: no episode has {needs} of '
                        f'{", ".join(recordings.cameras)} (the longest has {longest})')
    return usable


def evenly_spaced(count: int, limit: int) -> np.ndarray:
    """Indices of at most limit of count items, spread evenly from the first to the last."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def show_image(axes: Axes, image: Tensor | np.ndarray, title: str = '') -> None:
    """A (3, H, W) image in [0, 1] on axes, without ticks."""
    pixels = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    axes.imshow(np.clip(pixels.transpose(1, 2, 0), 0, 1), interpolation='nearest')
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize='small')


def confidence_intervals(units: str,
                         samples: Mapping[str, tuple[Sequence[float], Sequence[float] | None]]) -> dict[str, Any]:
    """ReportRow's intervals and interval_units: for each column, the interval of sum(numerators) /
    sum(denominators) over its units (ssl_robot.train.intervals); columns with fewer than two units have none."""
    intervals = {column: ratio_interval(numerators, denominators)
                 for column, (numerators, denominators) in samples.items()}
    measured = {column: [interval.low, interval.high] for column, interval in intervals.items() if interval}
    counts = {interval.units for interval in intervals.values() if interval}
    return {'intervals': measured, 'interval_units': f'{"/".join(map(str, sorted(counts)))} {units}' if counts else ''}
