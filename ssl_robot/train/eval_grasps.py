"""Evaluating Grasp2Vec on held-out bags: top-1 retrieval of grasped objects and localisation of the grasped object
in the scene by the heatmap, beside the random encoder and chance (evaluate.REPORT_CONTENTS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ssl_robot.data.datasets import make_dataset
from ssl_robot.train.baselines import random_model
from ssl_robot.train.eval_common import (CHANCE, RANDOM, TRAINED, EvalError, EvalOptions, Evaluation, TrainedRun,
                                         confidence_intervals, recorded_rigs, show_image)
from ssl_robot.train.metrics import batched_retrieval_top1, localisation_chance, localisation_success, retrieval_chance
from ssl_robot.train.report import ReportRow, new_figure


RETRIEVAL_ORDER_SEED = 0
"""Seed of the shuffle that deals the grasps into retrieval batches, so that a batch rarely holds two grasps of one
episode (often of one object) and the batches are the same on every evaluation."""


def _heatmap_figure(scenes: Tensor, objects: Tensor, heatmaps: Tensor, masks: Tensor) -> Figure:
    """Per example: the scene before the grasp with the trained heatmap over it and the object's mask outlined,
    and the object image."""
    count = len(scenes)
    figure = new_figure(2.2 * count, 4.6)
    grid = figure.subplots(2, count, squeeze=False)
    for example in range(count):
        show_image(grid[0, example], scenes[example], 's_pre, heatmap, mask')
        grid[0, example].imshow(heatmaps[example].cpu().numpy(), cmap='jet', alpha=0.45, interpolation='bilinear')
        if masks[example].any():
            grid[0, example].contour(masks[example].cpu().numpy(), levels=[0.5], colors='white', linewidths=1)
        show_image(grid[1, example], objects[example], 'object')
    return figure


def evaluate_grasps(run: TrainedRun, bags: list[Path], options: EvalOptions, device: torch.device) -> Evaluation:
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
                  **confidence_intervals('batches', {column: (rates, None) for column, rates in retrieval.items()})),
        ReportRow('localisation success', {**{column: sum(hits) / grasps for column, hits in localisation.items()},
                                           CHANCE: localisation_chance(all_masks)},
                  lower_is_better=False,
                  note=f'heatmap argmax on the grasped object in s_pre, {grasps} successful grasps; chance: the '
                       f'mean share of the scene the object covers',
                  **confidence_intervals('episodes', {column: (hits, grasps_per_episode)
                                            for column, hits in localisation.items()}))]
    meta = {'successful_grasps': grasps, 'failed_grasps': failed, 'recorded_rigs': recorded_rigs(stream.recordings),
            'grasps_left_out': dict(stream.recordings.skipped)}
    return Evaluation(rows, {'heatmaps': plot}, meta)
