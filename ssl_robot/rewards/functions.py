"""Rewards computed from learned embeddings: TCN imitation, RIG latent goal reaching, Grasp2Vec goal grasping.

Pure numpy: the reward node embeds images with the models (TCN.embed, BetaVAE.encode, Grasp2Vec.object_embedding),
converts the rows to arrays and calls this module. Embeddings are array-likes of floats (numpy arrays, lists, CPU
tensors without grad): a single embedding is (D,), a batch (N, D). Every check raises ValueError naming the argument.

  tcn_reward(e, d)              r = scale * (-alpha |e - d|^2 - beta sqrt(gamma + |e - d|^2))   Sermanet et al. 2018
  latent_distance_reward(z, g)  r = -scale * |z - g|                                           Nair et al. 2018 (RIG)
  grasp2vec_reward(g, o)        r = scale * phi_o(g) . phi_o(o)  (or their cosine)              Jang et al. 2018

ImitationReward follows one demonstration through an episode (stateful, reset() between episodes);
LatentGoalReward and Grasp2VecReward hold the current goal and score one embedding at a time.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from numbers import Real
from typing import Any, NamedTuple

import numpy as np

ALIGNMENTS = ('time_index', 'nearest_neighbour')

# Sermanet et al. 2018 only call alpha and beta "empirically chosen" and gamma "a small constant". Equal weights
# make the sqrt term (about beta |e - d|, a steep funnel near the demo) and the squared term (dominant far away)
# matter alike over the [0, 2] distances of unit-norm TCN embeddings; gamma = 1e-3 rounds the funnel's tip within
# about 0.03 of the demo frame so the reward stays smooth there.
DEFAULT_ALPHA = 1.0
DEFAULT_BETA = 1.0
DEFAULT_GAMMA = 1e-3


def float_array(value: Any, name: str, shape: tuple[str | int, ...]) -> np.ndarray:
    """value as a finite float64 array of the given shape: int entries are exact sizes, str entries name an axis of
    any size, empty only if named 'N' (a batch may be empty, an embedding may not)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f'{name} must be an array of numbers, got {type(value).__name__}: {err}') from None
    fits = array.ndim == len(shape) and all(
        got == want if isinstance(want, int) else got > 0 or want == 'N' for got, want in zip(array.shape, shape))
    if not fits:
        wanted = ', '.join(map(str, shape)) + (',' if len(shape) == 1 else '')
        raise ValueError(f'{name} must have shape ({wanted}), got {array.shape}')
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f'{name} must be finite, got {array[bad][0]} at index {tuple(map(int, np.argwhere(bad)[0]))}')
    return array


def paired_embeddings(first: Any, first_name: str, second: Any, second_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Two finite embedding arrays of the same shape, (D,) or (N, D): row i of one pairs with row i of the other."""
    arrays = []
    for value, name in ((first, first_name), (second, second_name)):
        ndim = np.ndim(value)
        if ndim not in (1, 2):
            raise ValueError(f'{name} must have shape (D,) or (N, D), got {np.shape(value)}')
        arrays.append(float_array(value, name, ('D',) if ndim == 1 else ('N', 'D')))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f'{first_name} and {second_name} must have the same shape, got {arrays[0].shape} and '
                         f'{arrays[1].shape}')
    return arrays[0], arrays[1]


def real_number(value: Any, name: str, *, minimum: float, inclusive: bool) -> float:
    """value as a finite float, > minimum (>= when inclusive); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value!r}')
    if value < minimum or (value == minimum and not inclusive):
        raise ValueError(f'{name} must be {">=" if inclusive else ">"} {minimum}, got {value}')
    return float(value)


def positive_scale(scale: float) -> float:
    return real_number(scale, 'scale', minimum=0.0, inclusive=False)


def require_bool(value: Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f'{name} must be a bool, got {value!r}')


def tcn_weights(alpha: float, beta: float, gamma: float, scale: float) -> tuple[float, float, float, float]:
    """The tcn_reward weights checked: alpha, beta, gamma >= 0, not both alpha and beta 0, scale > 0."""
    checked = (real_number(alpha, 'alpha', minimum=0.0, inclusive=True),
               real_number(beta, 'beta', minimum=0.0, inclusive=True),
               real_number(gamma, 'gamma', minimum=0.0, inclusive=True),
               positive_scale(scale))
    if checked[0] == 0 and checked[1] == 0:
        raise ValueError('alpha and beta are both 0: the reward would ignore the distance to the demo')
    return checked


def tcn_reward(embeddings: Any, targets: Any, *, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
               gamma: float = DEFAULT_GAMMA, scale: float = 1.0) -> np.ndarray:
    """TCN imitation reward r = scale * (-alpha |e - d|^2 - beta sqrt(gamma + |e - d|^2)) of observed embeddings e
    against demo embeddings d, row by row: (D,) -> () or (N, D) -> (N,). Its maximum, at e = d, is
    -scale * beta * sqrt(gamma), not 0."""
    alpha, beta, gamma, scale = tcn_weights(alpha, beta, gamma, scale)
    observed, demo = paired_embeddings(embeddings, 'embeddings', targets, 'targets')
    squared = np.sum((observed - demo) ** 2, axis=-1)
    return scale * (-alpha * squared - beta * np.sqrt(gamma + squared))


def latent_distance_reward(latents: Any, goals: Any, *, scale: float = 1.0) -> np.ndarray:
    """RIG's reward r = -scale * |z - g|, the Euclidean distance of latents to goal latents (as BetaVAE.reward),
    row by row: (D,) -> () or (N, D) -> (N,)."""
    scale = positive_scale(scale)
    achieved, goal = paired_embeddings(latents, 'latents', goals, 'goals')
    return -scale * np.linalg.norm(achieved - goal, axis=-1)


def grasp2vec_reward(goal_embeddings: Any, grasped_embeddings: Any, *, normalize: bool = True,
                     scale: float = 1.0) -> np.ndarray:
    """Grasp2Vec's reward of goal object embeddings against the embeddings of the objects grasped (as
    Grasp2Vec.reward), row by row: (D,) -> () or (N, D) -> (N,). normalize=True (the default) scores their cosine,
    r = scale * cos(phi_o(g), phi_o(o)), which does not grow with embedding magnitude; an all-zero embedding then has
    no direction and is refused. normalize=False scores the paper's dot product, r = scale * phi_o(g) . phi_o(o),
    which ranks the goal object first less often (README, reward_node; bench/bench_grasp2vec_reward.py)."""
    scale = positive_scale(scale)
    require_bool(normalize, 'normalize')
    goals, grasped = paired_embeddings(goal_embeddings, 'goal_embeddings', grasped_embeddings, 'grasped_embeddings')
    if normalize:
        goals = _unit_rows(goals, 'goal_embeddings')
        grasped = _unit_rows(grasped, 'grasped_embeddings')
    return scale * np.sum(goals * grasped, axis=-1)


def _unit_rows(embeddings: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f'{name} has an all-zero row at index {tuple(np.argwhere(norms[..., 0] == 0)[0])}: '
                         f'its cosine is undefined')
    return embeddings / norms


@dataclass(frozen=True, eq=False)
class DemoTrajectory:
    """One demonstration as an embedding trajectory: embeddings (T, D) of its frames at stamps_ns (T,), strictly
    increasing integer nanoseconds (any origin: only times relative to the first frame are used)."""

    embeddings: np.ndarray
    stamps_ns: np.ndarray

    def __post_init__(self) -> None:
        embeddings = float_array(self.embeddings, 'DemoTrajectory.embeddings', ('T', 'D'))
        stamps = np.asarray(self.stamps_ns)
        if stamps.dtype.kind not in 'iu' or stamps.shape != (len(embeddings),):
            raise ValueError(f'DemoTrajectory.stamps_ns must be integers of shape ({len(embeddings)},), one per '
                             f'embedding, got {stamps.dtype} {stamps.shape}')
        steps = np.diff(stamps.astype(np.int64))
        if (steps <= 0).any():
            at = int(np.argmax(steps <= 0)) + 1
            raise ValueError(f'DemoTrajectory.stamps_ns must be strictly increasing, got {int(stamps[at])} after '
                             f'{int(stamps[at - 1])} at index {at}')
        object.__setattr__(self, 'embeddings', embeddings)
        object.__setattr__(self, 'stamps_ns', stamps.astype(np.int64))

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    @property
    def times_s(self) -> np.ndarray:
        """(T,) seconds since the demo's first frame."""
        return (self.stamps_ns - self.stamps_ns[0]) / 1e9

    def frame_at(self, time_s: float) -> int:
        """Index of the frame nearest in time to time_s seconds after the first (the earlier on a tie); times past
        the last frame give the last frame."""
        times = self.times_s
        after = int(np.searchsorted(times, time_s))
        if after == len(times):
            return after - 1
        if after > 0 and time_s - times[after - 1] <= times[after] - time_s:
            return after - 1
        return after


class ImitationStep(NamedTuple):
    """One scored observation of an ImitationReward episode."""

    reward: float
    demo_index: int
    """The demo frame the observation was compared with."""
    squared_distance: float
    """|e - d|^2 to that frame."""


class ImitationReward:
    """TCN imitation reward against one demonstration, over one episode at a time (reset() starts the next).

    alignment picks the demo frame each observation is compared with:
      'time_index': the frame nearest in time to the observation's episode time, both counted in seconds from their
        first frame; past the demo's end, its last frame. Controllers that count steps pass step * step period.
      'nearest_neighbour': the frame nearest in embedding space. With window=None any frame of the demo; with
        window=k only frames i..i+k, i being the previous step's match (frame 0 before the first step), so the
        match never moves backwards and skips at most k frames per step, as a repetitive or ambiguous demo would
        otherwise let it jump back and forth.
    The reward is tcn_reward with alpha, beta, gamma and scale (see DEFAULT_ALPHA and the comment there).
    """

    def __init__(self, demo: DemoTrajectory, alignment: str = 'time_index', scale: float = 1.0, *,
                 alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA, gamma: float = DEFAULT_GAMMA,
                 window: int | None = None):
        if not isinstance(demo, DemoTrajectory):
            raise ValueError(f'demo must be a DemoTrajectory, got {type(demo).__name__}')
        if alignment not in ALIGNMENTS:
            raise ValueError(f'alignment must be one of {list(ALIGNMENTS)}, got {alignment!r}')
        if window is not None:
            if alignment != 'nearest_neighbour':
                raise ValueError(f"window only applies to alignment='nearest_neighbour', got window={window!r} "
                                 f'with alignment={alignment!r}')
            if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
                raise ValueError(f'window must be an int >= 1 or None, got {window!r}')
        self.demo = demo
        self.alignment = alignment
        self.window = None if window is None else int(window)
        self.alpha, self.beta, self.gamma, self.scale = tcn_weights(alpha, beta, gamma, scale)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: the match goes back to the demo's first frame and episode time may restart."""
        self._last_index = 0
        self._last_time_s: float | None = None

    def step(self, embedding: Any, episode_time_s: float | None = None) -> ImitationStep:
        """Score the observation embedding (D,) taken episode_time_s seconds after the episode started.

        episode_time_s is required by 'time_index' and optional for 'nearest_neighbour'; when given it must not
        decrease within an episode, which catches a missing reset() between episodes."""
        observed = float_array(embedding, 'embedding', (self.demo.dim,))
        if episode_time_s is not None:
            self._advance_time(episode_time_s)
        elif self.alignment == 'time_index':
            raise ValueError("episode_time_s is required with alignment='time_index'")
        if self.alignment == 'time_index':
            index = self.demo.frame_at(self._last_time_s)
        else:
            index = self._nearest_frame(observed)
        self._last_index = index
        squared = float(np.sum((observed - self.demo.embeddings[index]) ** 2))
        reward = float(tcn_reward(observed, self.demo.embeddings[index], alpha=self.alpha, beta=self.beta,
                                  gamma=self.gamma, scale=self.scale))
        return ImitationStep(reward, index, squared)

    def _advance_time(self, episode_time_s: float) -> None:
        time_s = real_number(episode_time_s, 'episode_time_s', minimum=0.0, inclusive=True)
        if self._last_time_s is not None and time_s < self._last_time_s:
            raise ValueError(f'episode_time_s went back from {self._last_time_s} to {time_s} within an episode: '
                             f'call reset() when a new episode starts')
        self._last_time_s = time_s

    def _nearest_frame(self, observed: np.ndarray) -> int:
        first = 0 if self.window is None else self._last_index
        last = len(self.demo) if self.window is None else min(first + self.window + 1, len(self.demo))
        distances = np.sum((self.demo.embeddings[first:last] - observed) ** 2, axis=1)
        return first + int(np.argmin(distances))


class _GoalReward(ABC):
    """A reward of one embedding against the current goal embedding, which set_goal replaces."""

    def __init__(self, scale: float = 1.0):
        self.scale = positive_scale(scale)
        self._goal: np.ndarray | None = None

    @property
    def goal(self) -> np.ndarray | None:
        return self._goal

    def set_goal(self, goal: Any) -> None:
        """goal: (D,), the embedding later observations are scored against."""
        self._goal = float_array(goal, 'goal', ('D',))

    def reward(self, embedding: Any) -> float:
        """The reward of embedding (D,) for the current goal."""
        if self._goal is None:
            raise RuntimeError(f'{type(self).__name__} has no goal yet: call set_goal() first')
        observed = float_array(embedding, 'embedding', (len(self._goal),))
        return float(self._score(observed, self._goal))

    @abstractmethod
    def _score(self, embedding: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The reward of a checked embedding for a checked goal, both (D,)."""


class LatentGoalReward(_GoalReward):
    """RIG: r = -scale * |e(s) - e(g)| for latents e(s) of the current state and e(g) of the goal (set_goal), e.g.
    a prior sample from BetaVAE.sample_goals or an encoded goal image."""

    def _score(self, embedding: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return latent_distance_reward(embedding, goal, scale=self.scale)


class Grasp2VecReward(_GoalReward):
    """Grasp2Vec: r = scale * cos(phi_o(g), phi_o(o)) (the dot product unless normalize) between the goal object's
    embedding (set_goal) and that of the object a grasp brought to the object camera, scored when the grasp event
    arrives."""

    def __init__(self, scale: float = 1.0, normalize: bool = True):
        super().__init__(scale)
        require_bool(normalize, 'normalize')
        self.normalize = bool(normalize)

    def _score(self, embedding: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return grasp2vec_reward(goal, embedding, normalize=self.normalize, scale=self.scale)
