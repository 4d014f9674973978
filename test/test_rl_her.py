"""ssl_robot.rl.her: RIG's goal sources in SB3's HER buffer, and the one reward function relabelling uses."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ssl_robot.rewards.relabel import GoalSource, LatentRelabelConfig
from ssl_robot.rl.envs import make_env
from ssl_robot.rl.her import RigHerReplayBuffer
from ssl_robot.rl.observers import StateObserver, make_observer
from ssl_robot.rl.policy import env_spaces
from ssl_robot.rl.config import RLConfig
from ssl_robot.rl.tasks import EnvConfig

ORIGINAL_GOAL = 7.0
N_ENVS = 2


class RecordingPrior(StateObserver):
    """The oracle's observer, remembering every prior goal it hands out."""

    def __init__(self) -> None:
        super().__init__(EnvConfig(task='reach', mode='state'))
        self.handed_out: list[np.ndarray] = []

    def sample_prior_goals(self, count: int, rng: np.random.Generator) -> np.ndarray:
        goals = super().sample_prior_goals(count, rng)
        self.handed_out.append(goals)
        return goals


def filled_buffer(episode_lengths: list[int], buffer_size: int = 1000, relabel=LatentRelabelConfig(),
                  observer=None, seed: int = 0) -> RigHerReplayBuffer:
    """A buffer of buffer_size transitions (buffer_size / N_ENVS rows) fed the given episodes in each of N_ENVS
    envs. The achieved goal after storing row r of env e
    is (r + 10, e + 10): far from the prior's goals and the original goal, and naming where it was stored."""
    observation_space, action_space = env_spaces(RLConfig(env=EnvConfig(mode='state')))
    buffer = RigHerReplayBuffer(buffer_size, observation_space, action_space, n_envs=N_ENVS, device='cpu',
                                observer=observer or RecordingPrior(), relabel=relabel, seed=seed)
    for length in episode_lengths:
        for t in range(length):
            row = buffer.pos
            achieved = np.array([[row + 10.0, env + 10.0] for env in range(N_ENVS)], np.float32)
            obs = {'observation': achieved - 1, 'achieved_goal': achieved - 1,
                   'desired_goal': np.full((N_ENVS, 2), ORIGINAL_GOAL, np.float32)}
            next_obs = {**obs, 'observation': achieved, 'achieved_goal': achieved}
            done = np.full(N_ENVS, t == length - 1)
            infos = [{'TimeLimit.truncated': bool(done[0])}] * N_ENVS
            buffer.add(obs, next_obs, np.zeros((N_ENVS, 2)), np.zeros(N_ENVS), done, infos)
    return buffer


def test_a_large_batch_has_exactly_the_configured_shares_of_each_source():
    buffer = filled_buffer([5, 8, 3, 6])
    rows, envs = buffer.sample_transitions(10_000)
    goals, source, _ = buffer.relabelled_goals(rows, envs)
    assert np.bincount(source, minlength=3).tolist() == [1000, 5000, 4000]  # RIG: 0.1 / 0.5 / 0.4
    original = source == GoalSource.ORIGINAL
    np.testing.assert_array_equal(goals[original], ORIGINAL_GOAL)


def test_future_goals_were_achieved_later_in_the_same_episode():
    buffer = filled_buffer([5, 8, 3, 6], relabel=LatentRelabelConfig(prior_fraction=0.0, future_fraction=1.0))
    rows, envs = buffer.sample_transitions(5000)
    goals, source, future_rows = buffer.relabelled_goals(rows, envs)
    assert (source == GoalSource.FUTURE).all()
    # The goal names the row and env it was achieved at.
    np.testing.assert_array_equal(goals, np.stack([future_rows + 10.0, envs + 10.0], axis=1))
    episode_start = buffer.ep_start[rows, envs]
    np.testing.assert_array_equal(buffer.ep_start[future_rows, envs], episode_start)
    assert (future_rows >= rows).all()
    # Every later step of an episode is drawn, the transition's own outcome included (HER's inclusive future).
    first_steps = rows == episode_start
    lengths = buffer.ep_length[rows, envs]
    assert set((future_rows - rows)[first_steps & (lengths == 8)]) == set(range(8))


def test_future_goals_stay_in_their_episode_when_the_buffer_wraps_around():
    buffer = filled_buffer([4, 4, 4], buffer_size=10 * N_ENVS, relabel=LatentRelabelConfig(0.0, 1.0))
    rows, envs = buffer.sample_transitions(2000)
    _, _, future_rows = buffer.relabelled_goals(rows, envs)
    # Rows 0-1 hold the end of the last episode, 2-7 the middle ones' remains; the first was overwritten.
    assert set(rows) <= {8, 9, 0, 1, 4, 5, 6, 7}
    np.testing.assert_array_equal(buffer.ep_start[future_rows, envs], buffer.ep_start[rows, envs])
    assert (((future_rows - buffer.ep_start[rows, envs]) % 10) >= ((rows - buffer.ep_start[rows, envs]) % 10)).all()


def test_prior_goals_come_from_the_env_prior():
    observer = RecordingPrior()
    buffer = filled_buffer([6, 6], relabel=LatentRelabelConfig(prior_fraction=1.0, future_fraction=0.0),
                           observer=observer)
    rows, envs = buffer.sample_transitions(4000)
    goals, _, _ = buffer.relabelled_goals(rows, envs)
    np.testing.assert_array_equal(goals, observer.handed_out[-1])
    assert np.abs(goals).max() <= 0.15 and goals.std(axis=0).min() > 0.05  # uniform over the workspace


def test_sampled_batches_carry_the_new_goals_and_rewards_recomputed_by_the_observer():
    buffer = filled_buffer([5, 7])
    batch = buffer.sample(512)
    goals = batch.observations['desired_goal'].numpy()
    np.testing.assert_array_equal(batch.next_observations['desired_goal'].numpy(), goals)
    achieved = batch.next_observations['achieved_goal'].numpy()
    np.testing.assert_allclose(batch.rewards.numpy()[:, 0], -np.linalg.norm(achieved - goals, axis=1), rtol=1e-6)
    assert (batch.dones.numpy() == 0).all()  # truncations are bootstrapped through


def test_the_seed_fixes_the_batches():
    first, again, other = (filled_buffer([5, 7], seed=seed).sample(64) for seed in (1, 1, 2))
    np.testing.assert_array_equal(first.observations['desired_goal'], again.observations['desired_goal'])
    assert not np.array_equal(first.observations['desired_goal'], other.observations['desired_goal'])


def test_a_pixel_observer_has_no_prior_to_relabel_with():
    observation_space, action_space = env_spaces(RLConfig(env=EnvConfig(mode='state')))
    pixel = make_observer(EnvConfig(mode='pixel', goal_source='state'))
    with pytest.raises(ValueError, match='relabel.prior_fraction is 0.5, but PixelObserver has no goal prior'):
        RigHerReplayBuffer(100, observation_space, action_space, observer=pixel)
    with pytest.raises(ValueError, match='pixel mode has no prior'):
        RLConfig(env=EnvConfig(mode='pixel', goal_source='state'))
    RLConfig(env=EnvConfig(mode='pixel', goal_source='state'), relabel=LatentRelabelConfig(0.0, 0.4))


def test_a_buffer_without_prior_goals_never_asks_the_observer_for_one():
    class NoPrior(RecordingPrior):
        def sample_prior_goals(self, count, rng):
            raise ValueError('NoPrior has no goal prior')

    buffer = filled_buffer([5, 7], relabel=LatentRelabelConfig(0.0, 0.8), observer=NoPrior())
    goals, source, _ = buffer.relabelled_goals(*buffer.sample_transitions(200))
    assert (source != GoalSource.PRIOR).all() and np.isfinite(goals).all()


def test_the_buffer_state_round_trips_through_npz_without_pickles():
    buffer = filled_buffer([5, 7, 4], buffer_size=12)
    data = io.BytesIO()
    np.savez(data, **buffer.state_arrays())
    data.seek(0)
    restored = filled_buffer([], buffer_size=12)
    with np.load(data, allow_pickle=False) as arrays:
        restored.load_state_arrays(dict(arrays), 'saved')
    for name, array in buffer.state_arrays().items():
        np.testing.assert_array_equal(restored.state_arrays()[name], array, err_msg=name)
    smaller = filled_buffer([], buffer_size=8)
    with pytest.raises(ValueError, match=r'saved: replay buffer array actions has shape \(6, 2, 2\), but this '
                                         r'config makes \(4, 2, 2\)'):
        smaller.load_state_arrays(buffer.state_arrays(), 'saved')


def test_an_episode_the_save_interrupted_is_closed_on_load():
    saved = filled_buffer([5, 3, 2])
    # Undo the end of the last episode: its two steps were stored when training stopped, and cannot be sampled.
    saved.ep_length[8:10] = 0
    saved.dones[9] = False
    saved._current_ep_start[:] = 8
    restored = filled_buffer([])
    restored.load_state_arrays(saved.state_arrays(), 'saved')
    # The resumed envs start new episodes: the stored steps become a truncated episode, bootstrapped through.
    assert restored.pos == 10 and (restored.ep_length[8:10] == 2).all()
    assert restored.dones[9].all() and restored.timeouts[9].all()
    assert (restored._current_ep_start == 10).all()


@pytest.mark.parametrize('mode', ['state', 'pixel'])
def test_batched_compute_reward_equals_the_per_step_reward(mode):
    env = make_env(EnvConfig(task='reach', mode=mode, goal_source='state'))
    try:
        achieved, desired, step_rewards = [], [], []
        for episode in range(3):
            obs, _ = env.reset(seed=episode)
            for _ in range(4):
                obs, reward, _, _, _ = env.step(env.action_space.sample())
                achieved.append(obs['achieved_goal'])
                desired.append(obs['desired_goal'])
                step_rewards.append(reward)
        # The steps' own pairs, then random pairs of achieved and desired goals across episodes.
        np.testing.assert_allclose(env.compute_reward(np.array(achieved), np.array(desired), {}), step_rewards,
                                   rtol=1e-6)
        pairs = np.random.default_rng(0).integers(len(achieved), size=(20, 2))
        batched = env.compute_reward(np.array(achieved)[pairs[:, 0]], np.array(desired)[pairs[:, 1]], {})
        single = [env.compute_reward(achieved[i], desired[j], {}) for i, j in pairs]
        np.testing.assert_allclose(batched, single, rtol=1e-6)
    finally:
        env.close()
