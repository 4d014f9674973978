"""`ssl-robot eval RUN_DIR|CHECKPOINT --bag HELD_OUT [HELD_OUT ...] [--rig RIG=BAG ...] [--out DIR]
[--baseline svtcn=RUN_DIR] [--compare RUN_DIR]`: how good a trained representation is on held-out bags (and on the
bags of held-out camera rigs, side by side), next to baselines, as a report (ssl_robot.train.report:
report.json, report.md, plots/*.png) in RUN_DIR/eval/ or --out. The Python API is evaluate_run().

Every episode of every bag given is evaluated: the bags are the held-out data. The run's latest checkpoint is
loaded into the model its config.yaml describes, so a checkpoint of another method or shape is refused. What each
report holds is REPORT_CONTENTS (also shown by `ssl-robot eval --help`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from ssl_robot.data.datasets import LABEL_KEYS, Recordings, episode_frames, index_recordings, make_dataset
from ssl_robot.data.samplers import EpisodeFrames
from ssl_robot.data.reader import resize_rgb, rgb_to_tensor
from ssl_robot.models import (CCVAE, METHODS, build_model, default_device, load_weights, method_spec,
                              read_checkpoint_header)
from ssl_robot.models.registry import TCN_FAMILY, VAE_FAMILY, methods_of
from ssl_robot.resources import share_path
from ssl_robot.train.baselines import (FrameEmbedder, PixelEmbedder, alignment_chance, images_to_device,
                                       model_embedder, random_model)
from ssl_robot.train.checkpoint import MODEL_FILE, latest_checkpoint
from ssl_robot.train.config import TrainConfig, config_from_dict, read_yaml_mapping
from ssl_robot.train.eval_rigs import recorded_rig_label, recorded_rig_problem, rig_name, side_by_side
from ssl_robot.train.intervals import ratio_interval
from ssl_robot.train.metrics import (area_downsample, attribute_probe_errors, batched_retrieval_top1,
                                     goal_consistency, goal_consistency_chance, localisation_chance,
                                     localisation_success, mean_alignment_error, reconstruction_error,
                                     retrieval_chance)
from ssl_robot.train.report import ReportRow, embedding_trajectories_figure, new_figure, write_report
from ssl_robot.train.run_dir import RunDir

REPORT_CONTENTS = """\
Metrics and columns per method (metric definitions in ssl_robot.train.metrics):
tcn, mftcn, svtcn: alignment error between the camera views (every ordered view pair), and the kNN classification
    error of gripper closed / object lifted / gripper contact: the episodes, in index order, alternate between the
    half the kNN is fitted on and the half it is tested on; every view of a time is one row. Columns: trained,
    random encoder (same architecture, fixed seed), raw pixels (each view on its own, area-downsampled to
    16x16 RGB), single-view TCN (tcn and mftcn only; n/a unless --baseline svtcn=RUN_DIR is given), chance (a
    uniformly random neighbour; for kNN the error of predicting the majority class of the fit half on the test
    half, which can exceed 0.5 when the halves differ). svtcn is evaluated on the views a multi-view TCN
    would be. For mftcn time t is the clip ending at t, and the times before the first full clip are left out of
    every column, the baselines' too.
grasp2vec: top-1 retrieval of each scene difference's object within batches of B successful grasps (a fixed
    shuffle of them; --retrieval-batch), and localisation success: the heatmap's argmax on the grasped object's
    mask in s_pre (successful grasps). Columns: trained, random encoder, chance.
betavae, ccvae: reconstruction error of the held-out frames, and goal consistency: goals imagined per episode
    (CC-VAE: z ~ N(0, I) decoded with the context of the episode's first frame; beta-VAE: prior samples, which
    know no context) each take the episode of their nearest held-out frame (compared as 16x16 pixels), and are
    consistent when that is their own episode. Columns: trained, `compare: METHOD` (--compare OTHER_VAE_RUN, on
    the same frames), random encoder, mean image (reconstruction: every frame rebuilt as the mean frame), chance
    (goal consistency: the largest episode's share).
Every measured figure has a 95 % confidence interval, a bootstrap over the units the note names (episodes; retrieval:
batches). With --rig RIG=BAG every metric is reported once per rig, 'METRIC [RIG]': first the rig the --bag bags were
recorded with ('bags' if they do not name one), then each held-out rig.
"""

EMBEDDING_METHODS = methods_of(TCN_FAMILY)
VAE_METHODS = methods_of(VAE_FAMILY)
BASELINE_RUNS = {'svtcn': methods_of(TCN_FAMILY, multi_view=True)}
"""--baseline NAME=RUN_DIR: the method of the run it names -> the methods it is a baseline for."""

TRAINED, RANDOM, PIXELS, SVTCN, MEAN_IMAGE, CHANCE = (
    'trained', 'random encoder', 'raw pixels', 'single-view TCN', 'mean image', 'chance')
RETRIEVAL_ORDER_SEED = 0
"""Seed of the shuffle that deals the grasps into retrieval batches, so that a batch rarely holds two grasps of one
episode (often of one object) and the batches are the same on every evaluation."""
GOAL_SEED = 0
"""Seed of the prior samples decoded into imagined goals."""
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


def _recorded_rigs(recordings: Recordings) -> list[str]:
    """The camera rigs the episodes of the recordings name (none for bags recorded before rigs were)."""
    return sorted({episode.rig for episode in recordings.episodes if episode.rig})


def _episode_images(recordings: Recordings, episode: int,
                    sizes: set[int]) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """The frames of one episode at each size, (T, V, S, S, 3) uint8, and its (T, 3) ground-truth labels in
    LABEL_KEYS order (None when the recordings were indexed without labels). Frames are read at the bag's
    resolution and resized as make_dataset resizes them, so each model sees what it was trained on."""
    resized: dict[int, list[np.ndarray]] = {size: [] for size in sizes}
    labels = []
    for frame in episode_frames(recordings, episode, window_samples=READ_WINDOW_FRAMES):
        for size, frames in resized.items():
            frames.append(np.stack([resize_rgb(image, size) for image in frame.images]))
        if frame.labels is not None:
            labels.append([frame.labels[key] for key in LABEL_KEYS])
    return {size: np.stack(frames) for size, frames in resized.items()}, np.array(labels) if labels else None


def _episodes_with_frames(recordings: Recordings, minimum: int) -> list[EpisodeFrames]:
    """The episodes with at least minimum synchronized frames; an EvalError naming the bags if there are none."""
    usable = [frames for frames in recordings.frames if len(frames) >= minimum]
    if not usable:
        longest = max((len(frames) for frames in recordings.frames), default=0)
        needs = f'the {minimum} frames the first full clip spans' if minimum > 1 else 'frames'
        raise EvalError(f'{", ".join(map(str, recordings.bags))}: no episode has {needs} of '
                        f'{", ".join(recordings.cameras)} (the longest has {longest})')
    return usable


def _evenly_spaced(count: int, limit: int) -> np.ndarray:
    """Indices of at most limit of count items, spread evenly from the first to the last."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def _show(axes: Axes, image: Tensor | np.ndarray, title: str = '') -> None:
    """A (3, H, W) image in [0, 1] on axes, without ticks."""
    pixels = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    axes.imshow(np.clip(pixels.transpose(1, 2, 0), 0, 1), interpolation='nearest')
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize='small')


# --- TCN family ---------------------------------------------------------------------------------------------

def _probe_times(lengths: Mapping[int, int], first_time: int, limit: int) -> dict[int, np.ndarray]:
    """For the episodes of one probe half ({episode id: frames}), the times used as kNN rows: every time from
    first_time, or limit of them spread evenly over the half."""
    counts = [length - first_time for length in lengths.values()]
    chosen = _evenly_spaced(sum(counts), limit)
    bounds = np.cumsum([0, *counts])
    return {episode: chosen[(chosen >= start) & (chosen < stop)] - start + first_time
            for episode, start, stop in zip(lengths, bounds[:-1], bounds[1:])}


def _evaluate_embeddings(run: TrainedRun, svtcn: TrainedRun | None, bags: list[Path], options: EvalOptions,
                         device: torch.device) -> Evaluation:
    # svtcn is trained on one camera but, like a multi-view TCN, evaluated on the views the alignment needs.
    recordings = index_recordings('tcn' if run.method == 'svtcn' else run.method, bags, run.config.data,
                                  labels=True)
    pixel_size = min(options.pixel_size, run.image_size)
    embedders: dict[str, FrameEmbedder] = {
        TRAINED: model_embedder(run.model, device, options.batch_size),
        RANDOM: model_embedder(random_model(run.method, run.config.model, device), device, options.batch_size),
        PIXELS: PixelEmbedder(run.image_size, pixel_size, options.batch_size)}
    if svtcn is not None:
        embedders[SVTCN] = model_embedder(svtcn.model, device, options.batch_size)
    first_time = max(embedder.lookback for embedder in embedders.values())
    lengths = {frames.episode.id: len(frames) for frames in _episodes_with_frames(recordings, first_time + 1)}
    episodes = list(lengths)
    halves = {'fit': episodes[0::2], 'test': episodes[1::2]}
    probe_times = {episode: times for half in halves.values()
                   for episode, times in _probe_times({e: lengths[e] for e in half}, first_time,
                                                      options.max_probe_frames).items()}
    sizes = {embedder.image_size for embedder in embedders.values()}
    alignment: dict[str, list[float]] = {column: [] for column in embedders}
    probe_rows: dict[str, dict[str, list[np.ndarray]]] = {column: {'fit': [], 'test': []} for column in embedders}
    probe_labels: dict[str, list[np.ndarray]] = {'fit': [], 'test': []}
    trajectories: dict[str, np.ndarray] = {}

    for episode in episodes:
        images, labels = _episode_images(recordings, episode, sizes)
        times = np.arange(first_time, lengths[episode])
        half = 'fit' if episode in halves['fit'] else 'test'
        probed = probe_times[episode] - first_time
        for column, embedder in embedders.items():
            views = {topic: embedder.embed(images[embedder.image_size][:, view], times)
                     for view, topic in enumerate(recordings.cameras)}
            alignment[column].append(mean_alignment_error([views]))
            probe_rows[column][half] += [embeddings[probed] for embeddings in views.values()]
            if column == TRAINED and not trajectories:
                trajectories = views
        probe_labels[half] += [labels[probe_times[episode]]] * len(recordings.cameras)

    episode_lengths = [lengths[episode] - first_time for episode in episodes]
    # A tcn or mftcn report always has the single-view TCN column, None (n/a) when no such run was given.
    columns = [TRAINED, RANDOM, PIXELS, *([SVTCN] if run.method in BASELINE_RUNS['svtcn'] else [])]
    skipped = f'; times from {first_time}, the end of the first full clip' if first_time else ''
    rows = [ReportRow('alignment error', {
        **{column: float(np.mean(alignment[column])) if column in embedders else None for column in columns},
        CHANCE: alignment_chance(episode_lengths)}, lower_is_better=True,
        note=f'{len(recordings.cameras)} views, every ordered pair; {len(episodes)} episodes{skipped}; '
             f'chance: a uniformly random neighbour',
        **_intervals('episodes', {column: (errors, None) for column, errors in alignment.items()}))]
    probe: dict[str, int] = {}
    for half, members in halves.items():
        probe[f'{half}_episodes'] = len(members)
        probe[f'{half}_rows'] = sum(len(probe_times[episode]) for episode in members) * len(recordings.cameras)
    meta: dict[str, Any] = {'cameras': list(recordings.cameras), 'episodes': len(episodes),
                            'recorded_rigs': _recorded_rigs(recordings),
                            'frames_per_view': int(sum(episode_lengths)), 'first_time': first_time,
                            'raw_pixels': f'{pixel_size}x{pixel_size} RGB',
                            'probe': probe,
                            'baselines': {'svtcn': svtcn.checkpoint if svtcn else None}}
    if halves['test']:
        rows += _probe_rows(columns, probe_rows, probe_labels, halves, len(recordings.cameras), options.knn_k)
    else:
        meta['not_measured'] = 'kNN attribute errors: they need two held-out episodes, one to fit and one to test'
    title = f'{run.method} embeddings of episode {episodes[0]} (step {run.step})'
    return Evaluation(rows, {'embedding_trajectories': embedding_trajectories_figure(trajectories, title)}, meta)


def _probe_rows(columns: list[str], probe_rows: dict[str, dict[str, list[np.ndarray]]],
                probe_labels: dict[str, list[np.ndarray]], halves: dict[str, list[int]], views: int,
                k: int) -> list[ReportRow]:
    """One kNN error row per attribute, from the embeddings of the fit and test halves of every measured column.
    probe_rows and probe_labels hold `views` entries per episode, episode by episode. Each test episode is scored
    on its own (against the whole fit half), so that the errors have an interval over test episodes."""
    labels = {half: np.concatenate(probe_labels[half]) for half in probe_labels}
    fit_attributes = {key: labels['fit'][:, i] for i, key in enumerate(LABEL_KEYS)}
    test_episodes = [np.concatenate(probe_labels['test'][start:start + views])
                     for start in range(0, len(probe_labels['test']), views)]
    # {column: {attribute: ([wrong rows per test episode], [rows per test episode])}}, CHANCE the majority class's.
    wrong: dict[str, dict[str, list[float]]] = {column: {key: [] for key in LABEL_KEYS}
                                               for column in [*probe_rows, CHANCE]}
    for column, rows in probe_rows.items():
        fit = np.concatenate(rows['fit'])
        for episode, episode_labels in enumerate(test_episodes):
            test = np.concatenate(rows['test'][episode * views:(episode + 1) * views])
            errors = attribute_probe_errors(fit, fit_attributes, test,
                                            {key: episode_labels[:, i] for i, key in enumerate(LABEL_KEYS)}, k)
            for key, error in errors.items():
                wrong[column][key].append(error.error * len(test))
                if column == TRAINED:
                    wrong[CHANCE][key].append(error.majority_baseline * len(test))
    counts = [float(len(episode_labels)) for episode_labels in test_episodes]
    note = (f'k={k}; fit on {len(halves["fit"])} episodes ({len(labels["fit"])} rows), tested on '
            f'{len(halves["test"])} ({len(labels["test"])} rows); chance: the majority class of the fit half, '
            f'scored on the test half (it can exceed 0.5 when the halves differ)')
    return [ReportRow(f'kNN error: {key}', {
        **{column: sum(wrong[column][key]) / sum(counts) if column in wrong else None for column in columns},
        CHANCE: sum(wrong[CHANCE][key]) / sum(counts)}, lower_is_better=True, note=note,
        **_intervals('test episodes', {column: (per_episode[key], counts) for column, per_episode in wrong.items()}))
        for key in LABEL_KEYS]


def _intervals(units: str, samples: Mapping[str, tuple[Sequence[float], Sequence[float] | None]]) -> dict[str, Any]:
    """ReportRow's intervals and interval_units: for each column, the interval of sum(numerators) /
    sum(denominators) over its units (ssl_robot.train.intervals); columns with fewer than two units have none."""
    intervals = {column: ratio_interval(numerators, denominators)
                 for column, (numerators, denominators) in samples.items()}
    measured = {column: [interval.low, interval.high] for column, interval in intervals.items() if interval}
    counts = {interval.units for interval in intervals.values() if interval}
    return {'intervals': measured, 'interval_units': f'{"/".join(map(str, sorted(counts)))} {units}' if counts else ''}


# --- Grasp2Vec ----------------------------------------------------------------------------------------------

def _heatmap_figure(scenes: Tensor, objects: Tensor, heatmaps: Tensor, masks: Tensor) -> Figure:
    """Per example: the scene before the grasp with the trained heatmap over it and the object's mask outlined,
    and the object image."""
    count = len(scenes)
    figure = new_figure(2.2 * count, 4.6)
    grid = figure.subplots(2, count, squeeze=False)
    for example in range(count):
        _show(grid[0, example], scenes[example], 's_pre, heatmap, mask')
        grid[0, example].imshow(heatmaps[example].cpu().numpy(), cmap='jet', alpha=0.45, interpolation='bilinear')
        if masks[example].any():
            grid[0, example].contour(masks[example].cpu().numpy(), levels=[0.5], colors='white', linewidths=1)
        _show(grid[1, example], objects[example], 'object')
    return figure


def _evaluate_grasps(run: TrainedRun, bags: list[Path], options: EvalOptions, device: torch.device) -> Evaluation:
    stream = make_dataset('grasp2vec', bags, run.config.data, 'all', batch_size=options.batch_size, labels=True,
                          shuffle=False, drop_last=False)
    models = {TRAINED: run.model, RANDOM: random_model(run.method, run.config.model, device)}
    differences: dict[str, list[np.ndarray]] = {column: [] for column in models}
    objects: dict[str, list[np.ndarray]] = {column: [] for column in models}
    heatmaps: dict[str, list[np.ndarray]] = {column: [] for column in models}
    masks: list[np.ndarray] = []
    grasp_episodes: list[np.ndarray] = []
    failed = 0
    plot: Figure | None = None
    for batch in stream:
        success = batch['success']
        failed += int((~success).sum())
        if not success.any():
            continue
        pre, post, shown = (batch[key][success].to(device) for key in ('pre', 'post', 'object'))
        for column, model in models.items():
            differences[column].append((model.scene_embedding(pre) - model.scene_embedding(post)).cpu().numpy())
            objects[column].append(model.object_embedding(shown).cpu().numpy())
            heatmaps[column].append(model.heatmap(pre, shown).cpu().numpy())
        masks.append(batch['pre_mask'][success].numpy())
        grasp_episodes.append(batch['episode'][success].numpy())
        if plot is None:
            examples = slice(0, options.plot_examples)
            plot = _heatmap_figure(pre[examples], shown[examples],
                                   run.model.heatmap(pre[examples], shown[examples], upsample=True),
                                   batch['pre_mask'][success][examples])
    grasps = sum(len(batch_masks) for batch_masks in masks)
    size = options.retrieval_batch
    if grasps < size:
        raise EvalError(f'{", ".join(map(str, bags))}: retrieval in batches of {size} needs at least {size} '
                        f'successful grasps, the bags hold {grasps}: lower --retrieval-batch or add bags')
    order = np.random.default_rng(RETRIEVAL_ORDER_SEED).permutation(grasps)
    all_masks = np.concatenate(masks)
    batches = [order[start:start + size] for start in range(0, grasps - size + 1, size)]
    retrieval = {column: [batched_retrieval_top1(np.concatenate(differences[column])[batch],
                                                 np.concatenate(objects[column])[batch], size) for batch in batches]
                 for column in models}
    episode_of_grasp = np.concatenate(grasp_episodes)
    by_episode = [episode_of_grasp == episode for episode in np.unique(episode_of_grasp)]
    localisation = {column: [localisation_success(np.concatenate(heatmaps[column])[grasps_of], all_masks[grasps_of])
                             * grasps_of.sum() for grasps_of in by_episode] for column in models}
    grasps_per_episode = [float(grasps_of.sum()) for grasps_of in by_episode]
    rows = [
        ReportRow('retrieval top-1', {**{column: float(np.mean(rates)) for column, rates in retrieval.items()},
                                      CHANCE: retrieval_chance(size)}, lower_is_better=False,
                  note=f'{grasps // size} batches of {size} of the {grasps} successful grasps, in a fixed shuffled '
                       f'order; chance: 1/{size}',
                  **_intervals('batches', {column: (rates, None) for column, rates in retrieval.items()})),
        ReportRow('localisation success', {**{column: sum(hits) / grasps for column, hits in localisation.items()},
                                           CHANCE: localisation_chance(all_masks)},
                  lower_is_better=False,
                  note=f'heatmap argmax on the grasped object in s_pre, {grasps} successful grasps; chance: the '
                       f'mean share of the scene the object covers',
                  **_intervals('episodes', {column: (hits, grasps_per_episode)
                                            for column, hits in localisation.items()}))]
    meta = {'successful_grasps': grasps, 'failed_grasps': failed, 'recorded_rigs': _recorded_rigs(stream.recordings),
            'grasps_left_out': dict(stream.recordings.skipped)}
    return Evaluation(rows, {'heatmaps': plot}, meta)


# --- VAEs ---------------------------------------------------------------------------------------------------

def _reconstruct(model: nn.Module, states: Tensor, context: Tensor) -> Tensor:
    """Each state decoded from its posterior mean; a CC-VAE with context (the episode's first frame) as well."""
    if isinstance(model, CCVAE):
        contexts = context.expand(len(states), *context.shape)
        return model.decode(model.encode(states, contexts), contexts)
    return model.decode(model.encode(states))


def _imagine(model: nn.Module, contexts: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """(E, count, C, H, W) goals for E episodes with first frames contexts: a CC-VAE decodes prior samples under each
    context; a beta-VAE knows no context, so its goals are prior samples decoded alone."""
    if isinstance(model, CCVAE):
        return model.imagine_goals(contexts, count, generator).images
    goals = model.decode(model.sample_goals(len(contexts) * count, generator))
    return goals.view(len(contexts), count, *goals.shape[1:])


def _vae_figure(frames: Tensor, reconstructions: dict[str, Tensor], contexts: Tensor,
                goals: dict[str, Tensor]) -> Figure:
    """Rows: held-out frames and each model's reconstructions of them; first frames of episodes and a goal each
    model imagined for each of those episodes."""
    grid_rows = [('held-out frame', frames), *((f'{name} reconstruction', images)
                                               for name, images in reconstructions.items()),
                 ('episode first frame', contexts), *((f'{name} goal', images) for name, images in goals.items())]
    columns = max(len(images) for _, images in grid_rows)
    figure = new_figure(1.6 * columns + 1.5, 1.7 * len(grid_rows))
    grid = figure.subplots(len(grid_rows), columns, squeeze=False)
    for row, (label, images) in enumerate(grid_rows):
        for column in range(columns):
            if column < len(images):
                _show(grid[row, column], images[column])
            else:
                grid[row, column].axis('off')
        grid[row, 0].set_ylabel(label, fontsize='small')
    return figure


def _squared_error_sum(model: nn.Module, frames: np.ndarray, device: torch.device, batch_size: int) -> float:
    """The squared reconstruction errors of one episode's (T, S, S, 3) frames summed over every pixel and channel;
    frames[0], its first frame, is the CC-VAE's context."""
    context = images_to_device(frames[0], device)
    total = 0.0
    for start in range(0, len(frames), batch_size):
        states = images_to_device(frames[start:start + batch_size], device)
        total += reconstruction_error(states.cpu().numpy(),
                                      _reconstruct(model, states, context).cpu().numpy()) * states.numel()
    return total


class _MeanFrameError:
    """The reconstruction error of rebuilding every frame as the mean frame, from running sums: per pixel and
    channel it is the variance of the frames, E[x^2] - E[x]^2. The mean comes from the evaluated frames themselves,
    which makes it the best any model ignoring its input can score."""

    def __init__(self) -> None:
        self.sum = self.square_sum = np.zeros(())
        self.count = 0

    def add(self, frames: np.ndarray) -> None:
        """(N, C, H, W) frames in [0, 1]."""
        self.sum, self.square_sum = self.sum + frames.sum(0), self.square_sum + np.square(frames).sum(0)
        self.count += len(frames)

    @property
    def error(self) -> float:
        return float((self.square_sum / self.count - np.square(self.sum / self.count)).mean())


def _goal_consistencies(models: dict[str, nn.Module], first_frames: dict[int, np.ndarray], episodes: list[int],
                        references: np.ndarray, reference_episodes: np.ndarray, goal_size: int, options: EvalOptions,
                        device: torch.device) -> tuple[dict[str, list[float]], dict[str, Tensor]]:
    """Each model's goal consistency per episode (of the goals imagined from its first frame), and for the plot one
    goal each for the first episodes. first_frames: the episodes' first frames (E, S, S, 3) per image size;
    references: (M, C, goal_size, goal_size) frames of the reference_episodes."""
    count = options.goals_per_episode
    consistency: dict[str, list[float]] = {}
    plot_goals: dict[str, Tensor] = {}
    for column, model in models.items():
        generator = torch.Generator(device=device).manual_seed(GOAL_SEED)
        contexts = first_frames[model.config.image_size]
        goals = []
        for start in range(0, len(contexts), options.batch_size):
            imagined = _imagine(model, images_to_device(contexts[start:start + options.batch_size], device),
                                options.goals_per_episode, generator)
            if start == 0:
                plot_goals[column] = imagined[:options.plot_examples, 0]
            goals.append(area_downsample(imagined.flatten(0, 1).cpu().numpy(), goal_size))
        goals = np.concatenate(goals)
        consistency[column] = [goal_consistency(goals[number * count:(number + 1) * count], np.repeat(episode, count),
                                                references, reference_episodes, downsample_size=goal_size)
                               for number, episode in enumerate(episodes)]
    return consistency, plot_goals


def _evaluate_vaes(run: TrainedRun, compared: TrainedRun | None, bags: list[Path], options: EvalOptions,
                   device: torch.device) -> Evaluation:
    recordings = index_recordings(run.method, bags, run.config.data)
    episodes = [frames.episode.id for frames in _episodes_with_frames(recordings, 1)]
    models = {TRAINED: run.model}
    if compared is not None:
        models[f'compare: {compared.method}'] = compared.model
    models[RANDOM] = random_model(run.method, run.config.model, device)
    sizes = {model.config.image_size for model in models.values()}
    goal_size = min(options.pixel_size, *sizes)
    squared_errors: dict[str, list[float]] = {column: [] for column in models}
    values_per_episode: list[float] = []
    mean_frame = _MeanFrameError()
    first_frames: dict[int, list[np.ndarray]] = {size: [] for size in sizes}
    references, reference_episodes = [], []
    plot_reconstructions: dict[str, Tensor] = {}

    for number, episode in enumerate(episodes):
        images, _ = _episode_images(recordings, episode, sizes)
        for size in sizes:
            first_frames[size].append(images[size][0, 0])
        for column, model in models.items():
            frames = images[model.config.image_size][:, 0]
            squared_errors[column].append(_squared_error_sum(model, frames, device, options.batch_size)
                                          / (3 * model.config.image_size ** 2))
            if number == 0:
                shown = images_to_device(frames[_evenly_spaced(len(frames), options.plot_examples)], device)
                plot_reconstructions[column] = _reconstruct(model, shown, images_to_device(frames[0], device))
        frames = rgb_to_tensor(images[run.image_size][:, 0]).double().numpy()
        mean_frame.add(frames)
        values_per_episode.append(float(len(frames)))
        if number == 0:
            plot_frames = frames[_evenly_spaced(len(frames), options.plot_examples)]
        references.append(area_downsample(frames[_evenly_spaced(len(frames), options.references_per_episode)],
                                          goal_size))
        reference_episodes += [episode] * len(references[-1])

    consistency, plot_goals = _goal_consistencies(
        models, {size: np.stack(frames) for size, frames in first_frames.items()}, episodes,
        np.concatenate(references), np.array(reference_episodes), goal_size, options, device)
    frame_count = mean_frame.count
    rows = [
        ReportRow('reconstruction error', {
            **{column: sum(errors) / frame_count for column, errors in squared_errors.items()},
            MEAN_IMAGE: mean_frame.error, CHANCE: None}, lower_is_better=True,
            note=f'mean squared error per pixel and channel, images in [0, 1]; {frame_count} frames',
            **_intervals('episodes', {column: (errors, values_per_episode)
                                      for column, errors in squared_errors.items()})),
        ReportRow('goal consistency', {**{column: float(np.mean(rates)) for column, rates in consistency.items()},
                                       MEAN_IMAGE: None,
                                       CHANCE: goal_consistency_chance(np.repeat(episodes, options.goals_per_episode))},
                  lower_is_better=False,
                  note=f'{options.goals_per_episode} goals for each of {len(episodes)} episodes, matched to '
                       f'{len(reference_episodes)} frames as {goal_size}x{goal_size} pixels; chance: the largest '
                       f'episode share',
                  **_intervals('episodes', {column: (rates, None) for column, rates in consistency.items()}))]
    first_contexts = rgb_to_tensor(np.stack(first_frames[run.image_size][:options.plot_examples]))
    plot = _vae_figure(plot_frames, plot_reconstructions, first_contexts, plot_goals)
    meta = {'camera': recordings.cameras[0], 'episodes': len(episodes), 'frames': frame_count,
            'recorded_rigs': _recorded_rigs(recordings),
            'compare': {'run': compared.path, 'checkpoint': compared.checkpoint} if compared else None}
    return Evaluation(rows, {'reconstructions_and_goals': plot}, meta)


# --- API and command line -----------------------------------------------------------------------------------

def resolve_device(name: str | torch.device | None) -> torch.device:
    """'auto' or None: CUDA when present, else the CPU; 'cuda' is refused on a machine without it."""
    if name is None or name == 'auto':
        return default_device()
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise EvalError(f'device {name!r} asked for, but torch sees no CUDA device here')
    return device


def default_out(run_dir: Path) -> Path:
    """Where a run's report goes when no --out is given: RUN_DIR/eval, or for a checkpoint file (which may be a
    shipped one, inside the package) runs/eval-<file name without suffix> in the working directory."""
    run_dir = Path(run_dir)
    return Path('runs') / f'eval-{run_dir.stem}' if run_dir.is_file() else run_dir / 'eval'


def evaluate_run(run_dir: str | Path, bags: Sequence[str | Path], out: str | Path | None = None,
                 baseline_runs: Mapping[str, str | Path] | None = None, compare: str | Path | None = None, *,
                 rigs: Mapping[str, Sequence[str | Path]] | None = None, options: EvalOptions = EvalOptions(),
                 device: str | torch.device | None = None) -> dict[str, Any]:
    """Evaluate the latest checkpoint of run_dir (or a checkpoint file) on the held-out bags and write the report into
    out (default: default_out). baseline_runs: {'svtcn': RUN_DIR} adds a single-view TCN column to a tcn or mftcn
    report. compare: another beta-VAE or CC-VAE run, evaluated beside a VAE run. rigs: {rig name: its held-out bags},
    each evaluated alone and reported beside the bags' rig (ssl_robot.train.eval_rigs). Returns the report as
    report.json holds it: 'method', 'columns', 'rows' (each {'metric', 'values': {column: number or None},
    'lower_is_better', 'note', 'intervals', 'interval_units'}), 'meta', 'plots' (paths relative to out). Bad input
    raises a ValueError naming the file and the problem."""
    device = resolve_device(device)
    baseline_runs = dict(baseline_runs or {})
    unknown = sorted(set(baseline_runs) - set(BASELINE_RUNS))
    if unknown:
        raise EvalError(f'unknown baseline {", ".join(unknown)}: the baselines are {", ".join(BASELINE_RUNS)}')
    bags = [Path(bag) for bag in bags]
    if not bags:
        raise EvalError('no held-out bags given: name them with --bag')
    run = load_run(run_dir, device)
    for name in baseline_runs:
        if run.method not in BASELINE_RUNS[name]:
            raise EvalError(f'--baseline {name} is a baseline for {" and ".join(BASELINE_RUNS[name])} runs; '
                            f'{run.path} is a {run.method!r} run')
    if compare is not None and run.method not in VAE_METHODS:
        raise EvalError(f'--compare sets one VAE run beside another; {run.path} is a {run.method!r} run')
    svtcn = baseline_runs.get('svtcn')
    svtcn_run = load_run(svtcn, device, role='--baseline svtcn', methods=('svtcn',)) if svtcn else None
    compared = load_run(compare, device, role='--compare', methods=VAE_METHODS) if compare else None

    def evaluate(held_out: list[Path]) -> Evaluation:
        if run.method in EMBEDDING_METHODS:
            return _evaluate_embeddings(run, svtcn_run, held_out, options, device)
        if run.method in VAE_METHODS:
            return _evaluate_vaes(run, compared, held_out, options, device)
        return _evaluate_grasps(run, held_out, options, device)

    evaluation = evaluate(bags)
    if rigs:
        groups = {recorded_rig_label(evaluation.meta['recorded_rigs']): evaluation._replace(
            meta={'bags': bags, **evaluation.meta})}
        for name, rig_bags in rigs.items():
            if rig_name(name) in groups:
                raise EvalError(f'--rig {name}: rig {rig_name(name)} is already in the report')
            rig_bags = [Path(bag) for bag in rig_bags]
            result = evaluate(rig_bags)
            problem = recorded_rig_problem(name, rig_bags, result.meta['recorded_rigs'])
            if problem:
                raise EvalError(problem)
            groups[rig_name(name)] = result._replace(meta={'bags': rig_bags, **result.meta})
        rows, plots, rig_meta = side_by_side(groups)
        evaluation = Evaluation(rows, plots, {**evaluation.meta, **rig_meta})
    meta = {'run': run.path, 'checkpoint': run.checkpoint, 'step': run.step, 'bags': bags, 'device': str(device),
            'options': options, **evaluation.meta}
    files = write_report(Path(out) if out is not None else default_out(run.path), run.method, evaluation.rows,
                         evaluation.plots, meta)
    return json.loads(files.json.read_text())


def _named_path(example: str) -> Callable[[str], tuple[str, Path]]:
    """An argparse type for NAME=PATH arguments; example shows one in the error."""
    def parse(text: str) -> tuple[str, Path]:
        name, separator, path = text.partition('=')
        if not separator or not name or not path:
            raise argparse.ArgumentTypeError(f'expected {example}, got {text!r}')
        return name, Path(path)
    return parse


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = REPORT_CONTENTS
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('run_dir', type=Path, metavar='RUN_DIR|CHECKPOINT',
                        help='run directory of `ssl-robot train` (its latest checkpoint is evaluated), or a checkpoint '
                             'file such as ssl_robot/checkpoints/tcn.safetensors (read with the data settings of '
                             'config/train/METHOD.yaml)')
    parser.add_argument('--bag', dest='bags', type=Path, nargs='+', action='extend', required=True,
                        metavar='HELD_OUT', help='held-out rosbag2 recordings, every episode evaluated (repeatable)')
    parser.add_argument('--out', type=Path, metavar='DIR',
                        help='report directory (default: RUN_DIR/eval; for a checkpoint file runs/eval-NAME)')
    parser.add_argument('--baseline', dest='baselines', type=_named_path('NAME=RUN_DIR, e.g. svtcn=runs/svtcn'),
                        action='append', default=[],
                        metavar='svtcn=RUN_DIR',
                        help='a single-view TCN run for the single-view TCN column of a tcn or mftcn report '
                             '(without it the column says n/a)')
    parser.add_argument('--rig', dest='rigs', type=_named_path('RIG=BAG, e.g. held_out_a=bags/held_out_a'),
                        action='append', default=[], metavar='RIG=BAG',
                        help='held-out bags recorded with another camera rig (ssl-robot collect --rig RIG), reported '
                             'beside the --bag bags, every metric once per rig; repeat for more rigs or bags')
    parser.add_argument('--compare', type=Path, metavar='RUN_DIR',
                        help='another betavae or ccvae run, evaluated beside a VAE run on the same frames')
    parser.add_argument('--batch-size', type=int, default=EvalOptions.batch_size, metavar='N',
                        help=f'images per forward pass (default {EvalOptions.batch_size})')
    parser.add_argument('--retrieval-batch', type=int, default=EvalOptions.retrieval_batch, metavar='B',
                        help=f'grasp2vec: grasps per retrieval batch, chance 1/B '
                             f'(default {EvalOptions.retrieval_batch})')
    parser.add_argument('--knn-k', type=int, default=EvalOptions.knn_k, metavar='K',
                        help=f'neighbours of the kNN attribute classifier (default {EvalOptions.knn_k})')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='where the models run (default auto: CUDA when present)')


def _printed_value(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return 'n/a'
    return f'{value:.4g}' + (f' [{interval[0]:.3g}, {interval[1]:.3g}]' if interval else '')


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate as args say and print the table; returns the exit status."""
    baselines = dict(args.baselines)
    if len(baselines) < len(args.baselines):
        raise EvalError('--baseline names the same baseline twice')
    options = EvalOptions(batch_size=args.batch_size, retrieval_batch=args.retrieval_batch, knn_k=args.knn_k)
    rigs: dict[str, list[Path]] = {}
    for name, bag in args.rigs:
        rigs.setdefault(name, []).append(bag)
    report = evaluate_run(args.run_dir, args.bags, args.out, baselines, args.compare, rigs=rigs, options=options,
                          device=args.device)
    out = args.out if args.out is not None else default_out(args.run_dir)
    for row in report['rows']:
        values = ', '.join(f'{column} {_printed_value(value, row["intervals"].get(column))}'
                           for column, value in row['values'].items())
        print(f'{row["metric"]}: {values}')
    print(f'report: {out / "report.md"}')
    return 0
