"""Evaluating the TCN family (tcn, mftcn, svtcn) on held-out bags: view alignment and the kNN attribute probe, beside
the random encoder, raw pixels and single-view TCN baselines (what each metric means: evaluate.REPORT_CONTENTS).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl_robot.data.recordings import LABEL_KEYS, index_recordings
from ssl_robot.train.baselines import FrameEmbedder, PixelEmbedder, alignment_chance, model_embedder, random_model
from ssl_robot.train.eval_common import (BASELINE_RUNS, CHANCE, PIXELS, RANDOM, SVTCN, TRAINED, EvalOptions, Evaluation,
                                         TrainedRun, confidence_intervals, episode_images, episodes_with_frames,
                                         evenly_spaced, recorded_rigs)
from ssl_robot.train.metrics import attribute_probe_errors, mean_alignment_error
from ssl_robot.train.report import ReportRow, embedding_trajectories_figure


def _probe_times(lengths: Mapping[int, int], first_time: int, limit: int) -> dict[int, np.ndarray]:
    """For the episodes of one probe half ({episode id: frames}), the times used as kNN rows: every time from
    first_time, or limit of them spread evenly over the half."""
    counts = [length - first_time for length in lengths.values()]
    chosen = evenly_spaced(sum(counts), limit)
    bounds = np.cumsum([0, *counts])
    return {episode: chosen[(chosen >= start) & (chosen < stop)] - start + first_time
            for episode, start, stop in zip(lengths, bounds[:-1], bounds[1:])}


def evaluate_embeddings(run: TrainedRun, svtcn: TrainedRun | None, bags: list[Path], options: EvalOptions,
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
    lengths = {frames.episode.id: len(frames) for frames in episodes_with_frames(recordings, first_time + 1)}
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
        images, labels = episode_images(recordings, episode, sizes)
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
        **confidence_intervals('episodes', {column: (errors, None) for column, errors in alignment.items()}))]
    probe: dict[str, int] = {}
    for half, members in halves.items():
        probe[f'{half}_episodes'] = len(members)
        probe[f'{half}_rows'] = sum(len(probe_times[episode]) for episode in members) * len(recordings.cameras)
    meta: dict[str, Any] = {'cameras': list(recordings.cameras), 'episodes': len(episodes),
                            'recorded_rigs': recorded_rigs(recordings),
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
        **confidence_intervals('test episodes',
                               {column: (per_episode[key], counts) for column, per_episode in wrong.items()}))
        for key in LABEL_KEYS]
