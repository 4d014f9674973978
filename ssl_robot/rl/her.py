"""RIG's relabelling in stable-baselines3's HER replay buffer.

Every sampled batch gets its goals from three sources, in the exact shares of
ssl_robot.rewards.relabel.assign_goal_sources (RIG's defaults: 0.1 original, 0.5 prior, 0.4 future):

  original  the goal the rollout was collected for
  prior     a goal imagined from the env's prior (the VAE prior N(0, I); uniform goal states in state mode)
  future    a goal achieved later in the same episode, or at the transition itself (HER's inclusive 'future'),
            found through SB3's own episode bookkeeping (ep_start, ep_length)

and every row's reward is recomputed by the env's observer, the one reward implementation
(ssl_robot.rewards.functions.latent_distance_reward). The observer is built in the learner's process from the EnvConfig,
so relabelling costs no round trip to the env processes.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from ssl_robot.rewards.relabel import GoalSource, LatentRelabelConfig, assign_goal_sources
from ssl_robot.rl.observers import Observer

# The replay buffer's arrays with one row per stored step (besides the observations), as a resume restores them.
ROW_ARRAYS = ('actions', 'rewards', 'dones', 'timeouts', 'ep_start', 'ep_length')
GOAL_KEYS = ('observation', 'achieved_goal', 'desired_goal')


class RigHerReplayBuffer(HerReplayBuffer):
    """HerReplayBuffer whose batches mix original, prior and future goals (see the module docstring).

    Passed to SAC/TD3 as replay_buffer_class with replay_buffer_kwargs={'observer': ..., 'relabel': ...,
    'seed': ...}; the SB3 arguments are as HerReplayBuffer's, without its n_sampled_goal and strategy."""

    def __init__(self, buffer_size: int, observation_space: spaces.Dict, action_space: spaces.Space,
                 env: VecEnv | None = None, device: Any = 'auto', n_envs: int = 1,
                 optimize_memory_usage: bool = False, handle_timeout_termination: bool = True, *,
                 observer: Observer, relabel: LatentRelabelConfig = LatentRelabelConfig(), seed: int = 0) -> None:
        super().__init__(buffer_size, observation_space, action_space, env, device=device, n_envs=n_envs,
                         optimize_memory_usage=optimize_memory_usage,
                         handle_timeout_termination=handle_timeout_termination)
        self.observer = observer
        self.relabel = relabel
        self.rng = np.random.default_rng(seed)
        if relabel.prior_fraction > 0:
            try:
                observer.sample_prior_goals(1, self.rng)
            except ValueError as err:
                raise ValueError(f'relabel.prior_fraction is {relabel.prior_fraction}, but {err}: set it to 0'
                                 ) from None

    def sample(self, batch_size: int,  # type: ignore[override]
               env: VecNormalize | None = None) -> DictReplayBufferSamples:
        rows, envs = self.sample_transitions(batch_size)
        goals, _, _ = self.relabelled_goals(rows, envs)
        obs = {key: self.observations[key][rows, envs] for key in GOAL_KEYS}
        next_obs = {key: self.next_observations[key][rows, envs] for key in GOAL_KEYS}
        obs['desired_goal'] = next_obs['desired_goal'] = goals
        # r_t scores s_{t+1}, what the action achieved, against the (new) goal.
        rewards = np.asarray(self.observer.reward(next_obs['achieved_goal'], goals), np.float32).reshape(-1, 1)
        return DictReplayBufferSamples(
            observations={key: self.to_torch(value) for key, value in self._normalize_obs(obs, env).items()},
            actions=self.to_torch(self.actions[rows, envs]),
            next_observations={key: self.to_torch(value)
                               for key, value in self._normalize_obs(next_obs, env).items()},
            # Truncation is not termination: the value of the last state is bootstrapped.
            dones=self.to_torch(self.dones[rows, envs] * (1 - self.timeouts[rows, envs])).reshape(-1, 1),
            rewards=self.to_torch(self._normalize_reward(rewards, env)),
        )

    def sample_transitions(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(buffer rows, env indices) of count transitions drawn uniformly, with replacement, from the finished
        episodes (an unfinished one has no future to relabel with yet; ep_length is 0 until it ends)."""
        valid = np.flatnonzero(self.ep_length > 0)
        if not len(valid):
            raise RuntimeError('the replay buffer holds no finished episode yet: learning_starts must cover one')
        return np.unravel_index(self.rng.choice(valid, size=count), self.ep_length.shape)

    def relabelled_goals(self, rows: np.ndarray, envs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(goals, GoalSource of each, buffer row of each future goal or -1) for the transitions (rows, envs)."""
        source = assign_goal_sources(len(rows), self.rng, self.relabel)
        goals = self.observations['desired_goal'][rows, envs].copy()
        prior = source == GoalSource.PRIOR
        if prior.any():   # an observer without a prior (pixel mode) is only asked when prior_fraction > 0
            goals[prior] = self.observer.sample_prior_goals(int(prior.sum()), self.rng)
        future = source == GoalSource.FUTURE
        future_rows = np.full(len(rows), -1, dtype=np.int64)
        future_rows[future] = self._future_rows(rows[future], envs[future])
        goals[future] = self.next_observations['achieved_goal'][future_rows[future], envs[future]]
        return goals, source, future_rows

    def _future_rows(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """For each transition, a buffer row drawn uniformly from its own step to its episode's last."""
        episode_start, episode_length = self.ep_start[rows, envs], self.ep_length[rows, envs]
        step_in_episode = (rows - episode_start) % self.buffer_size
        return (episode_start + self.rng.integers(step_in_episode, episode_length)) % self.buffer_size

    # ---------------------------------------------------------------------------------------------- resume

    def state_arrays(self) -> dict[str, np.ndarray]:
        """What a resume restores, as plain arrays (np.savez without pickles): the filled rows only."""
        filled = self.buffer_size if self.full else self.pos
        arrays = {name: getattr(self, name)[:filled] for name in ROW_ARRAYS}
        for key in GOAL_KEYS:
            arrays[f'observations.{key}'] = self.observations[key][:filled]
            arrays[f'next_observations.{key}'] = self.next_observations[key][:filled]
        arrays['current_ep_start'] = self._current_ep_start
        arrays['pos'] = np.array(self.pos)
        arrays['full'] = np.array(self.full)
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Restore state_arrays(); a buffer of another size or shape is refused with a ValueError naming source.
        Episodes the save interrupted are closed as truncated, since the envs start new ones."""
        filled = self.buffer_size if bool(arrays['full']) else int(arrays['pos'])
        targets = {name: getattr(self, name) for name in ROW_ARRAYS}
        for key in GOAL_KEYS:
            targets[f'observations.{key}'] = self.observations[key]
            targets[f'next_observations.{key}'] = self.next_observations[key]
        for name, target in targets.items():
            saved = arrays[name]
            if saved.shape != (filled, *target.shape[1:]) or filled > len(target):
                raise ValueError(f'{source}: replay buffer array {name} has shape {saved.shape}, but this config '
                                 f'makes {target.shape} (buffer_size, n_envs and the env must stay as they were)')
            target[:filled] = saved
        self._current_ep_start[:] = arrays['current_ep_start']
        self.pos, self.full = int(arrays['pos']), bool(arrays['full'])
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # SB3 warns that it truncates: that is what is wanted here
            self.truncate_last_trajectory()
