"""Evaluating the goal VAEs (betavae, ccvae) on held-out bags: reconstruction error and goal consistency, beside
another VAE run, the random encoder, the mean image and chance (evaluate.REPORT_CONTENTS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ssl_robot.data.recordings import index_recordings
from ssl_robot.images import rgb_to_tensor
from ssl_robot.models import CCVAE
from ssl_robot.models.losses import CHANGE_THRESHOLD, changed_pixels
from ssl_robot.train.baselines import images_to_device, random_model
from ssl_robot.train.eval_common import (CHANCE, FIRST_FRAME, MEAN_IMAGE, RANDOM, TRAINED, EvalOptions, Evaluation,
                                         TrainedRun, confidence_intervals, episode_images, episodes_with_frames,
                                         evenly_spaced, recorded_rigs, show_image)
from ssl_robot.train.metrics import (area_downsample, changed_pixel_squared_error, goal_consistency,
                                     goal_consistency_chance, reconstruction_error)
from ssl_robot.train.report import ReportRow, new_figure


GOAL_SEED = 0
"""Seed of the prior samples decoded into imagined goals."""
CHANGED_SHARE = 0.01
"""An image shows a change from its episode's first frame when this share of its pixels changed (losses.changed_pixels):
at 48-64 px about 25-40 pixels, less than the arm's part in view, more than a blurred edge."""


def _shows_a_change(images: Tensor, first: Tensor) -> Tensor:
    """(N,) bool for (N, C, H, W) images against first frames (or drawings of them), (N or 1, C, H, W)."""
    return changed_pixels(images, first.expand_as(images)).flatten(1).float().mean(1) > CHANGED_SHARE


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
                show_image(grid[row, column], images[column])
            else:
                grid[row, column].axis('off')
        grid[row, 0].set_ylabel(label, fontsize='small')
    return figure


def _squared_error_sums(model: nn.Module, frames: np.ndarray, device: torch.device,
                        batch_size: int) -> tuple[float, float, int]:
    """The squared reconstruction errors of one episode's (T, S, S, 3) frames summed over every pixel and channel,
    and summed over the changed pixels only with their count (metrics.changed_pixel_squared_error); frames[0], its
    first frame, is the CC-VAE's context."""
    context = images_to_device(frames[0], device)
    first = context.cpu().numpy()
    total = changed_total = 0.0
    changed_count = 0
    for start in range(0, len(frames), batch_size):
        states = images_to_device(frames[start:start + batch_size], device)
        states_array, reconstructions = states.cpu().numpy(), _reconstruct(model, states, context).cpu().numpy()
        total += reconstruction_error(states_array, reconstructions) * states.numel()
        changed_sum, count = changed_pixel_squared_error(states_array, reconstructions, first)
        changed_total, changed_count = changed_total + changed_sum, changed_count + count
    return total, changed_total, changed_count


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
                        device: torch.device
                        ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Tensor]]:
    """Each model's goal consistency per episode (of the goals imagined from its first frame), each CC-VAE's share
    of those goals that show a change (_shows_a_change) from its reconstruction of that first frame, and for the plot
    one goal each for the first episodes. first_frames: the episodes' first frames (E, S, S, 3) per image size;
    references: (M, C, goal_size, goal_size) frames of the reference_episodes."""
    count = options.goals_per_episode
    consistency: dict[str, list[float]] = {}
    changed: dict[str, list[float]] = {}
    plot_goals: dict[str, Tensor] = {}
    for column, model in models.items():
        generator = torch.Generator(device=device).manual_seed(GOAL_SEED)
        contexts = first_frames[model.config.image_size]
        goals = []
        for start in range(0, len(contexts), options.batch_size):
            first = images_to_device(contexts[start:start + options.batch_size], device)
            imagined = _imagine(model, first, options.goals_per_episode, generator)
            if isinstance(model, CCVAE):   # against its own drawing of the start, so that blur is no change
                start_drawn = model.decode(model.encode(first, first), first)
                changed.setdefault(column, []).extend(
                    _shows_a_change(imagined.flatten(0, 1), start_drawn.repeat_interleave(count, 0)).view(-1, count)
                    .float().mean(1).tolist())
            if start == 0:
                plot_goals[column] = imagined[:options.plot_examples, 0]
            goals.append(area_downsample(imagined.flatten(0, 1).cpu().numpy(), goal_size))
        goals = np.concatenate(goals)
        consistency[column] = [goal_consistency(goals[number * count:(number + 1) * count], np.repeat(episode, count),
                                                references, reference_episodes, downsample_size=goal_size)
                               for number, episode in enumerate(episodes)]
    return consistency, changed, plot_goals


def _changed_pixel_row(errors: dict[str, list[float]], counts: dict[str, list[float]], values: int) -> ReportRow:
    """The reconstruction error over changed pixels per column, from per-episode squared-error sums and value counts
    (the same for every column at one image size); episodes where nothing changed say nothing of it and are left out.
    values: how many pixel values the evaluated frames have."""
    kept = {column: [(error, count) for error, count in zip(errors[column], counts[column]) if count > 0]
            for column in errors}
    changed = sum(count for _, count in kept[FIRST_FRAME])
    return ReportRow(
        'changed-pixel reconstruction error',
        {**{column: sum(error for error, _ in pairs) / sum(count for _, count in pairs) if pairs else None
            for column, pairs in kept.items() if column != FIRST_FRAME},
         MEAN_IMAGE: None, FIRST_FRAME: sum(error for error, _ in kept[FIRST_FRAME]) / changed if changed else None,
         CHANCE: None},
        lower_is_better=True,
        note=f'mean squared error over the pixels of each frame that differ from its episode\'s first frame by more '
             f'than {CHANGE_THRESHOLD} in some channel (the arm, moved objects: {changed / values:.1%} of the values), '
             f'what a model copying the first frame cannot rebuild',
        **confidence_intervals('episodes', {column: ([error for error, _ in pairs], [count for _, count in pairs])
                                            for column, pairs in kept.items()}))


def evaluate_vaes(run: TrainedRun, compared: TrainedRun | None, bags: list[Path], options: EvalOptions,
                  device: torch.device) -> Evaluation:
    recordings = index_recordings(run.method, bags, run.config.data)
    episodes = [frames.episode.id for frames in episodes_with_frames(recordings, 1)]
    models = {TRAINED: run.model}
    if compared is not None:
        models[f'compare: {compared.method}'] = compared.model
    models[RANDOM] = random_model(run.method, run.config.model, device)
    sizes = {model.config.image_size for model in models.values()}
    goal_size = min(options.pixel_size, *sizes)
    squared_errors: dict[str, list[float]] = {column: [] for column in models}
    # Per episode and column: the squared error over the changed pixels, and how many values it sums.
    changed_errors: dict[str, list[float]] = {column: [] for column in [*models, FIRST_FRAME]}
    changed_counts: dict[str, list[float]] = {column: [] for column in changed_errors}
    values_per_episode: list[float] = []
    mean_frame = _MeanFrameError()
    # Every frame predicted by its episode's first frame s0: what a CC-VAE has in its context before z says anything.
    first_frame_errors: list[float] = []
    frames_showing_a_change = 0
    first_frames: dict[int, list[np.ndarray]] = {size: [] for size in sizes}
    references, reference_episodes = [], []
    plot_reconstructions: dict[str, Tensor] = {}

    for number, episode in enumerate(episodes):
        images, _ = episode_images(recordings, episode, sizes)
        for size in sizes:
            first_frames[size].append(images[size][0, 0])
        for column, model in models.items():
            frames = images[model.config.image_size][:, 0]
            total, changed_total, changed_count = _squared_error_sums(model, frames, device, options.batch_size)
            squared_errors[column].append(total / (3 * model.config.image_size ** 2))
            changed_errors[column].append(changed_total)
            changed_counts[column].append(float(changed_count))
            if number == 0:
                shown = images_to_device(frames[evenly_spaced(len(frames), options.plot_examples)], device)
                plot_reconstructions[column] = _reconstruct(model, shown, images_to_device(frames[0], device))
        frames = rgb_to_tensor(images[run.image_size][:, 0]).double().numpy()
        mean_frame.add(frames)
        first_frame_errors.append(float(np.square(frames - frames[:1]).mean(axis=(1, 2, 3)).sum()))
        changed_total, changed_count = changed_pixel_squared_error(frames, np.broadcast_to(frames[0], frames.shape),
                                                                   frames[0])
        changed_errors[FIRST_FRAME].append(changed_total)
        changed_counts[FIRST_FRAME].append(float(changed_count))
        frames_showing_a_change += int(_shows_a_change(torch.from_numpy(frames), torch.from_numpy(frames[:1])).sum())
        values_per_episode.append(float(len(frames)))
        if number == 0:
            plot_frames = frames[evenly_spaced(len(frames), options.plot_examples)]
        references.append(area_downsample(frames[evenly_spaced(len(frames), options.references_per_episode)],
                                          goal_size))
        reference_episodes += [episode] * len(references[-1])

    consistency, goals_changed, plot_goals = _goal_consistencies(
        models, {size: np.stack(frames) for size, frames in first_frames.items()}, episodes,
        np.concatenate(references), np.array(reference_episodes), goal_size, options, device)
    frame_count = mean_frame.count
    rows = [
        ReportRow('reconstruction error', {
            **{column: sum(errors) / frame_count for column, errors in squared_errors.items()},
            MEAN_IMAGE: mean_frame.error, FIRST_FRAME: sum(first_frame_errors) / frame_count, CHANCE: None},
            lower_is_better=True,
            note=f'mean squared error per pixel and channel, images in [0, 1]; {frame_count} frames; first frame: '
                 f'each frame predicted by its episode\'s first frame, the CC-VAE\'s context',
            **confidence_intervals('episodes', {column: (errors, values_per_episode) for column, errors
                                                in {**squared_errors, FIRST_FRAME: first_frame_errors}.items()})),
        _changed_pixel_row(changed_errors, changed_counts, 3 * frame_count * run.image_size ** 2),
        ReportRow('goal consistency', {**{column: float(np.mean(rates)) for column, rates in consistency.items()},
                                       MEAN_IMAGE: None, FIRST_FRAME: None,
                                       CHANCE: goal_consistency_chance(np.repeat(episodes, options.goals_per_episode))},
                  lower_is_better=False,
                  note=f'{options.goals_per_episode} goals for each of {len(episodes)} episodes, matched to '
                       f'{len(reference_episodes)} frames as {goal_size}x{goal_size} pixels; chance: the largest '
                       f'episode share',
                  **confidence_intervals('episodes', {column: (rates, None) for column, rates in consistency.items()}))]
    if goals_changed:
        rows.append(ReportRow(
            'goals showing a change', {**{column: float(np.mean(goals_changed[column])) if column in goals_changed
                                          else None for column in models},
                                       MEAN_IMAGE: None, FIRST_FRAME: 0.0, CHANCE: None},
            lower_is_better=False,
            note=f'share of the CC-VAE\'s imagined goals in which more than {CHANGED_SHARE:.0%} of the pixels differ '
                 f'from its reconstruction of their context, the episode\'s first frame (the arm moved into view or '
                 f'elsewhere); of the held-out frames {frames_showing_a_change / frame_count:.0%} differ so from '
                 f'their first frame',
            **confidence_intervals('episodes', {column: (shares, None) for column, shares in goals_changed.items()})))
    first_contexts = rgb_to_tensor(np.stack(first_frames[run.image_size][:options.plot_examples]))
    plot = _vae_figure(plot_frames, plot_reconstructions, first_contexts, plot_goals)
    meta = {'camera': recordings.cameras[0], 'episodes': len(episodes), 'frames': frame_count,
            'recorded_rigs': recorded_rigs(recordings),
            'compare': {'run': compared.path, 'checkpoint': compared.checkpoint} if compared else None}
    return Evaluation(rows, {'reconstructions_and_goals': plot}, meta)
