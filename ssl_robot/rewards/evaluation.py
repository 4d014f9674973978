"""Judging a reward stream by how it orders what it should, and the scripted arm motions that probe it.

Pure (no rclpy): the end-to-end tests of the online graph (test/test_online_end_to_end.py) use these on the rewards
the reward node publishes, and so can anyone checking a retrained checkpoint the same way.

- spearman_rho: the rank correlation of rewards with progress along a path. A latent-goal reward should rise as the
  arm moves toward the goal pose; ranks, not values, because the reward need not be linear in the distance.
- ranking_auc: the fraction of (positive, negative) pairs a reward puts in the right order, ties counting half. A
  Grasp2Vec reward should score grasps of the goal object above grasps of other objects.
- goal_ranked_first: how often the Grasp2Vec reward ranks the goal object first among the objects of one tray, given
  an image of it from another grasp (bench/bench_grasp2vec_reward.py measures it, dot product against cosine).
- straight_path: evenly spaced positions from one point to another, the steps of the arm from pose B to pose A.
- TimedPath: end-effector positions due at given times after an episode starts, the scripted motion that a
  demonstration and its replay both follow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from ssl_robot.rewards.functions import grasp2vec_reward

Position = tuple[float, float, float]


def _finite_values(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f'{name} must be a flat sequence of finite numbers, got {values!r}')
    return array


def spearman_rho(progress: Sequence[float], rewards: Sequence[float]) -> float:
    """Spearman's rank correlation of rewards with progress (ties get their average rank), in [-1, 1].

    Needs at least 3 pairs, and neither sequence constant: a constant reward has no ranking to correlate."""
    x, y = _finite_values(progress, 'progress'), _finite_values(rewards, 'rewards')
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f'progress and rewards must pair up, at least 3 of each, got {len(x)} and {len(y)}')
    for array, name in ((x, 'progress'), (y, 'rewards')):
        if np.all(array == array[0]):
            raise ValueError(f'{name} are all {array[0]}: a constant sequence has no rank correlation')
    return float(spearmanr(x, y).statistic)


def ranking_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The fraction of (positive, negative) pairs where the positive scores higher, a tie counting half: 1 when every
    positive outscores every negative, 0.5 for scores that do not tell them apart (the area under the ROC curve)."""
    high, low = _finite_values(positives, 'positives'), _finite_values(negatives, 'negatives')
    if not len(high) or not len(low):
        raise ValueError(f'need at least one positive and one negative, got {len(high)} and {len(low)}')
    above = (high[:, None] > low[None, :]).sum()
    ties = (high[:, None] == low[None, :]).sum()
    return float((above + 0.5 * ties) / (len(high) * len(low)))


def goal_ranked_first(embeddings: np.ndarray, objects: Sequence[str], episodes: Sequence[int], *,
                      normalize: bool) -> dict[int, tuple[int, int]]:
    """How often the Grasp2Vec reward ranks the goal object first among the objects grasped from one tray.

    embeddings: (N, D) phi_o of the object images of N successful grasps; objects: the name of each grasped object;
    episodes: the tray (episode) each was grasped from. For every episode with two or more grasped objects, every
    object in it, and every image of that object grasped in another episode (the goal image): the episode's objects
    are scored with grasp2vec_reward(goal, object, normalize=normalize); the trial is a hit when the goal's own object
    scores highest. Returns {episode: (hits, trials)} for the episodes with a trial."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    objects, episodes = np.asarray(objects), np.asarray(episodes)
    if embeddings.ndim != 2 or not len(embeddings) == len(objects) == len(episodes):
        raise ValueError(f'need (N, D) embeddings and N objects and episodes, got shapes {embeddings.shape}, '
                         f'{objects.shape} and {episodes.shape}')
    results = {}
    for episode in np.unique(episodes):
        tray = np.flatnonzero(episodes == episode)
        if len(tray) < 2:
            continue
        hits = trials = 0
        for position, grasp in enumerate(tray):
            for goal in np.flatnonzero((objects == objects[grasp]) & (episodes != episode)):
                scores = grasp2vec_reward(np.repeat(embeddings[goal][None], len(tray), 0), embeddings[tray],
                                          normalize=normalize)
                hits += int(np.argmax(scores) == position)
                trials += 1
        if trials:
            results[int(episode)] = (hits, trials)
    return results


def _position(value: Sequence[float], name: str) -> Position:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (3,) or not np.isfinite(array).all():
        raise ValueError(f'{name} must be 3 finite numbers (x, y, z), got {value!r}')
    return (float(array[0]), float(array[1]), float(array[2]))


def straight_path(start: Sequence[float], end: Sequence[float], steps: int) -> list[Position]:
    """steps + 1 evenly spaced positions from start to end, both included."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f'steps must be an int >= 1, got {steps!r}')
    first, last = np.array(_position(start, 'start')), np.array(_position(end, 'end'))
    return [_position(first + (last - first) * k / steps, 'position') for k in range(steps + 1)]


@dataclass(frozen=True)
class TimedPath:
    """End-effector positions, each due at a time in seconds after the episode starts (strictly increasing, >= 0).

    A controller sends each position once its time has come and holds it until the next: replayed against the same
    clock, two episodes follow the same motion however the wall clock ran."""

    times_s: tuple[float, ...]
    positions: tuple[Position, ...]

    def __post_init__(self) -> None:
        times = tuple(float(t) for t in self.times_s)
        if not times or len(times) != len(self.positions):
            raise ValueError(f'TimedPath needs one time per position and at least one, got {len(times)} times and '
                             f'{len(self.positions)} positions')
        if not all(math.isfinite(t) for t in times) or times[0] < 0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f'TimedPath.times_s must be finite, >= 0 and strictly increasing, got {list(times)}')
        object.__setattr__(self, 'times_s', times)
        object.__setattr__(self, 'positions', tuple(_position(p, f'TimedPath position {k}')
                                                    for k, p in enumerate(self.positions)))
