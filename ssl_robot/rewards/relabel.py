"""Goal relabeling for goal-conditioned controllers, on batches of transitions held as numpy arrays.

  assign_goal_sources     RIG (Nair et al. 2018): which rows of a replay batch get goals from the prior, which
                          goals the episode went on to achieve (HER's 'future'), and which keep their own
                          (ssl_robot.rl.her draws the goals and recomputes the rewards).
  posthoc_grasp_labels    Grasp2Vec (Jang et al. 2018): a successful grasp achieved the goal "this object", so the
                          grasped object's embedding phi_o(o) becomes its goal with reward 1.
  auxiliary_grasp_goals   Grasp2Vec: grasps relabeled with objects grasped in other episodes, goals they did not
                          achieve, rewarded phi_o(g) . phi_o(o).

Randomness comes only from the rng argument (a numpy Generator, or an int seed), so a seed fixes the result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

from ssl_robot.rewards.functions import float_array, grasp2vec_reward, real_number

# Fractions are often written as decimals (0.7 + 0.3); their float sum may exceed 1 by an ulp.
FRACTION_SUM_TOLERANCE = 1e-9


def _index_array(value: Any, name: str, rows: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in 'iu' or array.shape != (rows,):
        raise ValueError(f'{name} must be integers of shape ({rows},), got {array.dtype} {array.shape}')
    return array.astype(np.int64)


def _generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
        raise ValueError(f'rng must be a numpy Generator or a seed int >= 0, got {rng!r}')
    return np.random.default_rng(int(rng))


@dataclass(frozen=True, eq=False)
class Transitions:
    """N transitions (s, a, s') of goal-conditioned RL, each with its goal and reward; row i is step t[i] of
    episode episode[i]. Arrays are taken as given (converted, not copied, when already float64/int64)."""

    obs_latent: np.ndarray
    """(N, D) latent of the observation the action was taken in."""
    next_obs_latent: np.ndarray
    """(N, D) latent of the observation it led to: what the transition achieved."""
    action: np.ndarray
    """(N, A)."""
    reward: np.ndarray
    """(N,) reward of reaching next_obs_latent for goal."""
    goal: np.ndarray
    """(N, G) goal: a latent for RIG (G = D), an object embedding phi_o for Grasp2Vec."""
    episode: np.ndarray
    """(N,) integer episode id."""
    t: np.ndarray
    """(N,) integer step index within the episode, >= 0."""

    def __post_init__(self) -> None:
        obs = float_array(self.obs_latent, 'Transitions.obs_latent', ('N', 'D'))
        rows, dim = obs.shape
        checked = {
            'obs_latent': obs,
            'next_obs_latent': float_array(self.next_obs_latent, 'Transitions.next_obs_latent', (rows, dim)),
            'action': float_array(self.action, 'Transitions.action', (rows, 'A')),
            'reward': float_array(self.reward, 'Transitions.reward', (rows,)),
            'goal': float_array(self.goal, 'Transitions.goal', (rows, 'G')),
            'episode': _index_array(self.episode, 'Transitions.episode', rows),
            't': _index_array(self.t, 'Transitions.t', rows),
        }
        if (checked['t'] < 0).any():
            raise ValueError(f'Transitions.t must be >= 0, got {int(checked["t"].min())}')
        for name, array in checked.items():
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.reward)

    def take(self, rows: np.ndarray) -> Transitions:
        """The transitions at integer indices rows, in that order (repeats allowed)."""
        return Transitions(**{field.name: getattr(self, field.name)[rows] for field in dataclasses.fields(self)})

    def with_goals(self, goal: np.ndarray, reward: np.ndarray) -> Transitions:
        """These transitions with goal and reward replaced."""
        return dataclasses.replace(self, goal=goal, reward=reward)


@dataclass(frozen=True)
class LatentRelabelConfig:
    """Which share of a replay batch gets each source of goals (GoalSource); the rest keep the rollout's goal.
    The defaults are RIG's: 0.1 original, 0.5 prior, 0.4 future."""

    prior_fraction: float = 0.5
    """Goals imagined from the prior (the VAE prior N(0, I), or the CC-VAE's conditional prior): goals the policy
    may never have reached, as at test time."""
    future_fraction: float = 0.4
    """Goals achieved later in the same episode (HER 'future'): goals the transition demonstrably leads towards."""

    def __post_init__(self) -> None:
        for name in ('prior_fraction', 'future_fraction'):
            value = real_number(getattr(self, name), f'LatentRelabelConfig.{name}', minimum=0.0, inclusive=True)
            if value > 1:
                raise ValueError(f'LatentRelabelConfig.{name} must be <= 1, got {value}')
            object.__setattr__(self, name, value)
        if self.prior_fraction + self.future_fraction > 1 + FRACTION_SUM_TOLERANCE:
            raise ValueError(f'LatentRelabelConfig.prior_fraction + future_fraction must be <= 1, got '
                             f'{self.prior_fraction} + {self.future_fraction}')

    def counts(self, rows: int) -> tuple[int, int]:
        """(prior rows, future rows) of a batch of rows: each fraction of rows rounded half up, the two rounded
        together so that they never exceed rows."""
        prior = _round_half_up(self.prior_fraction * rows)
        both = min(_round_half_up((self.prior_fraction + self.future_fraction) * rows), rows)
        return prior, both - prior


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


class GoalSource(IntEnum):
    ORIGINAL = 0
    PRIOR = 1
    FUTURE = 2


def assign_goal_sources(rows: int, rng: np.random.Generator | int,
                        config: LatentRelabelConfig = LatentRelabelConfig()) -> np.ndarray:
    """(rows,) GoalSource of each row of a batch: exactly config.counts(rows) PRIOR and FUTURE rows, at random
    places, and ORIGINAL for the rest."""
    prior_count, future_count = config.counts(rows)
    source = np.full(rows, GoalSource.ORIGINAL, dtype=np.int64)
    source[:prior_count] = GoalSource.PRIOR
    source[prior_count:prior_count + future_count] = GoalSource.FUTURE
    return _generator(rng).permutation(source)


def _grasp_outcomes(transitions: Transitions, grasped_embeddings: Any,
                    success: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = len(transitions)
    embeddings = float_array(grasped_embeddings, 'grasped_embeddings', (rows, 'D'))
    flags = np.asarray(success)
    if flags.dtype != np.bool_ or flags.shape != (rows,):
        raise ValueError(f'success must be bools of shape ({rows},), one per transition, got {flags.dtype} '
                         f'{flags.shape}')
    return embeddings, flags


def posthoc_grasp_labels(transitions: Transitions, grasped_embeddings: Any, success: Any) -> Transitions:
    """Grasp2Vec posthoc labeling: each successful grasp becomes a transition whose goal is phi_o of the object it
    grasped, with reward 1. Failed grasps label nothing and are left out: nothing was grasped, so there is no
    object to name a goal after (auxiliary_grasp_goals uses them as reward-0 examples).

    transitions: one row per grasp attempt; grasped_embeddings (N, D): phi_o of the object camera image after
    each attempt (Grasp2Vec.object_embedding); success (N,) bool."""
    embeddings, flags = _grasp_outcomes(transitions, grasped_embeddings, success)
    succeeded = np.flatnonzero(flags)
    return transitions.take(succeeded).with_goals(embeddings[succeeded], np.ones(len(succeeded)))


class AuxiliaryGoals(NamedTuple):
    transitions: Transitions
    """Relabeled copies of the input transitions, grouped by source row."""
    source_row: np.ndarray
    """(M,) the input row each copy comes from."""
    goal_row: np.ndarray
    """(M,) the input row whose grasped object became the copy's goal."""


def auxiliary_grasp_goals(transitions: Transitions, grasped_embeddings: Any, success: Any,
                          rng: np.random.Generator | int, *, object_ids: Any = None, goals_per_transition: int = 1,
                          normalize: bool = True, scale: float = 1.0) -> AuxiliaryGoals:
    """Grasp2Vec auxiliary goals: each grasp relabeled with up to goals_per_transition objects it did not grasp.

    Candidate goals are phi_o of the objects successfully grasped in the batch, drawn at random without
    replacement, never from the grasp's own episode (whatever it grasped there counts as achieved) and, when
    object_ids (N,) ints are given, never an object with the grasp's own id, as the same object may be grasped
    again in another episode. Rows without a candidate yield nothing. Rewards: grasp2vec_reward(goal, grasped
    object) for successful grasps, 0 for failed ones, which grasped nothing.

    Arguments as posthoc_grasp_labels; normalize and scale as grasp2vec_reward."""
    generator = _generator(rng)
    embeddings, flags = _grasp_outcomes(transitions, grasped_embeddings, success)
    if isinstance(goals_per_transition, bool) or not isinstance(goals_per_transition, (int, np.integer)) \
            or goals_per_transition < 1:
        raise ValueError(f'goals_per_transition must be an int >= 1, got {goals_per_transition!r}')
    candidates = np.flatnonzero(flags)
    episode = transitions.episode
    eligible = episode[:, None] != episode[candidates][None, :]
    if object_ids is not None:
        ids = _index_array(object_ids, 'object_ids', len(transitions))
        eligible &= ids[:, None] != ids[candidates][None, :]
    # Sampling without replacement for every row at once: random keys, ineligible ones last, the k smallest kept.
    keys = np.where(eligible, generator.random(eligible.shape), np.inf)
    chosen = np.argsort(keys, axis=1)[:, :goals_per_transition]
    source_row, slot = np.nonzero(np.take_along_axis(eligible, chosen, axis=1))
    goal_row = candidates[chosen[source_row, slot]]

    goals = embeddings[goal_row]
    reward = np.zeros(len(source_row))
    rewarded = flags[source_row]
    reward[rewarded] = grasp2vec_reward(goals[rewarded], embeddings[source_row[rewarded]], normalize=normalize,
                                        scale=scale)
    return AuxiliaryGoals(transitions.take(source_row).with_goals(goals, reward), source_row, goal_row)
