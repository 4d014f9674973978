"""ssl_robot.rewards.functions: each reward against hand-computed values, demo alignment, episode state and bad
input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_robot.rewards.functions import (DemoTrajectory, Grasp2VecReward, ImitationReward, LatentGoalReward,
                                         grasp2vec_reward, latent_distance_reward, tcn_reward)

SECOND_NS = 1_000_000_000


def one_hot_demo(frames: int = 4, stamps_ns: list[int] | None = None) -> DemoTrajectory:
    """Frame i embeds as the i-th unit vector, so a matched frame can be read off the embedding."""
    stamps = np.arange(frames) * SECOND_NS if stamps_ns is None else np.array(stamps_ns)
    return DemoTrajectory(np.eye(frames), stamps)


def test_tcn_reward_matches_the_formula_by_hand():
    # |e - d|^2 = 1, sqrt(0.44 + 1) = 1.2: r = 0.5 * (-2 * 1 - 3 * 1.2) = -2.8
    assert tcn_reward([1.0, 0.0], [0.0, 0.0], alpha=2.0, beta=3.0, gamma=0.44, scale=0.5) == pytest.approx(-2.8)


def test_tcn_reward_of_rows_and_its_maximum_at_the_demo():
    rewards = tcn_reward([[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]], alpha=1.0, beta=1.0, gamma=0.0)
    np.testing.assert_allclose(rewards, [0.0, -25.0 - 5.0])
    assert float(tcn_reward([1.0, 2.0], [1.0, 2.0])) == pytest.approx(-math.sqrt(1e-3))


def test_latent_distance_reward_by_hand():
    assert latent_distance_reward([3.0, 4.0], [0.0, 0.0]) == pytest.approx(-5.0)
    np.testing.assert_allclose(latent_distance_reward([[1.0, 1.0], [4.0, 5.0]], [[1.0, 1.0], [1.0, 1.0]], scale=2.0),
                               [0.0, -10.0])


def test_grasp2vec_reward_dot_and_cosine_by_hand():
    assert grasp2vec_reward([1.0, 2.0], [3.0, 4.0], normalize=False) == pytest.approx(11.0)
    assert grasp2vec_reward([1.0, 2.0], [3.0, 4.0], normalize=False, scale=2.0) == pytest.approx(22.0)
    assert grasp2vec_reward([1.0, 2.0], [3.0, 4.0]) == pytest.approx(11.0 / (math.sqrt(5.0) * 5.0))  # cosine
    np.testing.assert_allclose(grasp2vec_reward([[1.0, 2.0], [2.0, 0.0]], [[3.0, 4.0], [5.0, 0.0]], normalize=True),
                               [11.0 / (math.sqrt(5.0) * 5.0), 1.0])


def test_grasp2vec_cosine_refuses_an_all_zero_embedding():
    with pytest.raises(ValueError, match='grasped_embeddings has an all-zero row'):
        grasp2vec_reward([[1.0, 2.0], [1.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]], normalize=True)


@pytest.mark.parametrize(('embeddings', 'targets', 'message'), [
    ([1.0, float('nan')], [0.0, 0.0], r'embeddings must be finite, got nan at index \(1,\)'),
    ([[1.0, 2.0]], [[1.0, float('inf')]], r'targets must be finite, got inf at index \(0, 1\)'),
    ([1.0, 2.0], [1.0, 2.0, 3.0], 'embeddings and targets must have the same shape'),
    ([1.0, 2.0], [[1.0, 2.0]], 'embeddings and targets must have the same shape'),
    (1.0, 1.0, r'embeddings must have shape \(D,\) or \(N, D\), got \(\)'),
    (np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), r'embeddings must have shape \(D,\) or \(N, D\)'),
    ([], [], r'embeddings must have shape \(D,\), got \(0,\)'),
    (['a', 'b'], [1.0, 2.0], 'embeddings must be an array of numbers'),
])
def test_rewards_refuse_bad_embeddings(embeddings, targets, message):
    with pytest.raises(ValueError, match=message):
        tcn_reward(embeddings, targets)


@pytest.mark.parametrize(('call', 'message'), [
    (lambda: tcn_reward([1.0], [1.0], alpha=0.0, beta=0.0), 'alpha and beta are both 0'),
    (lambda: tcn_reward([1.0], [1.0], gamma=-1.0), 'gamma must be >= 0.0, got -1.0'),
    (lambda: latent_distance_reward([1.0], [1.0], scale=0.0), 'scale must be > 0.0, got 0.0'),
    (lambda: latent_distance_reward([1.0], [1.0], scale=float('nan')), 'scale must be a finite number'),
    (lambda: grasp2vec_reward([1.0], [1.0], scale=True), 'scale must be a finite number, got True'),
    (lambda: grasp2vec_reward([1.0], [1.0], normalize='yes'), "normalize must be a bool, got 'yes'"),
])
def test_rewards_refuse_bad_weights(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(('embeddings', 'stamps', 'message'), [
    (np.zeros((0, 3)), np.zeros(0, dtype=np.int64), r'DemoTrajectory.embeddings must have shape \(T, D\)'),
    (np.eye(3)[:, :, None], np.arange(3), r'DemoTrajectory.embeddings must have shape \(T, D\)'),
    ([[1.0, float('nan')], [0.0, 1.0]], [0, 1], 'DemoTrajectory.embeddings must be finite'),
    (np.eye(3), [0, 1], r'stamps_ns must be integers of shape \(3,\)'),
    (np.eye(3), [0.0, 1.0, 2.0], r'stamps_ns must be integers of shape \(3,\), one per embedding, got float64'),
    (np.eye(3), [0, 5, 5], 'stamps_ns must be strictly increasing, got 5 after 5 at index 2'),
])
def test_demo_trajectory_refuses_bad_arrays(embeddings, stamps, message):
    with pytest.raises(ValueError, match=message):
        DemoTrajectory(np.asarray(embeddings), np.asarray(stamps))


def test_demo_frame_at_is_the_nearest_in_time_clamped_at_the_end():
    # Irregular stamps with an arbitrary origin: relative times 0, 1, 3 s.
    origin = 1_700_000_000 * SECOND_NS
    demo = one_hot_demo(3, [origin, origin + SECOND_NS, origin + 3 * SECOND_NS])
    np.testing.assert_allclose(demo.times_s, [0.0, 1.0, 3.0])
    assert [demo.frame_at(t) for t in (0.0, 0.49, 0.5, 0.51, 1.9, 2.0, 2.1, 3.0, 100.0)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_time_index_compares_with_the_demo_frame_of_the_same_time():
    demo = one_hot_demo(4)
    imitation = ImitationReward(demo, 'time_index', scale=2.0, alpha=1.0, beta=1.0, gamma=0.0)
    observed = np.array([0.0, 0.0, 1.0, 0.0])  # demo frame 2
    on_time = imitation.step(observed, 2.0)
    assert on_time == (pytest.approx(0.0), 2, pytest.approx(0.0))
    early = imitation.step(observed, 3.2)  # frame 3, |e - d|^2 = 2: r = 2 * (-2 - sqrt(2))
    assert (early.demo_index, early.squared_distance) == (3, pytest.approx(2.0))
    assert early.reward == pytest.approx(2.0 * (-2.0 - math.sqrt(2.0)))
    assert imitation.step(observed, 60.0).demo_index == 3


def test_time_index_needs_time_that_only_moves_forward_until_reset():
    imitation = ImitationReward(one_hot_demo(4), 'time_index')
    with pytest.raises(ValueError, match='episode_time_s is required'):
        imitation.step(np.zeros(4))
    imitation.step(np.zeros(4), 2.0)
    with pytest.raises(ValueError, match='went back from 2.0 to 1.0 within an episode: call reset'):
        imitation.step(np.zeros(4), 1.0)
    imitation.reset()
    assert imitation.step(np.zeros(4), 0.0).demo_index == 0
    with pytest.raises(ValueError, match='episode_time_s must be >= 0.0, got -0.5'):
        imitation.step(np.zeros(4), -0.5)


def test_nearest_neighbour_without_window_matches_any_frame():
    demo = one_hot_demo(5)
    imitation = ImitationReward(demo, 'nearest_neighbour')
    assert [imitation.step(demo.embeddings[i] * 0.9).demo_index for i in (4, 0, 3)] == [4, 0, 3]
    step = imitation.step(np.array([0.0, 0.0, 0.5, 0.0, 0.0]))
    assert step.squared_distance == pytest.approx(0.25)
    assert step.reward == pytest.approx(-0.25 - math.sqrt(1e-3 + 0.25))


def ramp_demo(frames: int) -> DemoTrajectory:
    """Frame i embeds as the 1-D point i: an observation at x is nearest to the frame closest to x."""
    return DemoTrajectory(np.arange(frames, dtype=float)[:, None], np.arange(frames) * SECOND_NS)


def test_nearest_neighbour_window_moves_forward_at_most_window_frames():
    imitation = ImitationReward(ramp_demo(6), 'nearest_neighbour', window=2)
    # Frame 5 is out of reach from frame 0: the best within frames 0..2 is taken, then the window follows it.
    assert [imitation.step([5.0]).demo_index for _ in range(3)] == [2, 4, 5]
    # Never backwards, even when an earlier frame is the exact match.
    assert imitation.step([1.0]).demo_index == 5
    imitation.reset()
    assert imitation.step([1.0]).demo_index == 1


def test_nearest_neighbour_checks_time_when_given():
    imitation = ImitationReward(one_hot_demo(3), 'nearest_neighbour')
    imitation.step(np.zeros(3), 1.0)
    imitation.step(np.zeros(3))
    with pytest.raises(ValueError, match='went back'):
        imitation.step(np.zeros(3), 0.5)


def test_a_failed_step_leaves_the_episode_state_alone():
    imitation = ImitationReward(ramp_demo(4), 'nearest_neighbour', window=1)
    assert imitation.step([1.0], 1.0).demo_index == 1
    with pytest.raises(ValueError, match=r'embedding must have shape \(1,\), got \(2,\)'):
        imitation.step([3.0, 0.0], 2.0)
    # Neither the refused time 2.0 nor a match was kept: time 1.0 is still allowed and the window still starts at 1.
    assert imitation.step([3.0], 1.0).demo_index == 2


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'alignment': 'dtw'}, "alignment must be one of \\['time_index', 'nearest_neighbour'\\], got 'dtw'"),
    ({'window': 3}, "window only applies to alignment='nearest_neighbour'"),
    ({'alignment': 'nearest_neighbour', 'window': 0}, 'window must be an int >= 1 or None, got 0'),
    ({'alignment': 'nearest_neighbour', 'window': 1.5}, 'window must be an int >= 1 or None, got 1.5'),
    ({'scale': -1.0}, 'scale must be > 0.0, got -1.0'),
    ({'alpha': 0.0, 'beta': 0.0}, 'alpha and beta are both 0'),
    ({'beta': '1'}, "beta must be a finite number, got '1'"),
])
def test_imitation_reward_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImitationReward(one_hot_demo(3), **kwargs)


def test_imitation_reward_needs_a_demo_trajectory():
    with pytest.raises(ValueError, match='demo must be a DemoTrajectory, got ndarray'):
        ImitationReward(np.eye(3))


def test_latent_goal_reward_scores_against_the_current_goal():
    latent = LatentGoalReward(scale=3.0)
    with pytest.raises(RuntimeError, match='LatentGoalReward has no goal yet'):
        latent.reward([0.0, 0.0])
    latent.set_goal([0.0, 0.0])
    assert latent.reward([3.0, 4.0]) == pytest.approx(-15.0)
    latent.set_goal([3.0, 4.0])
    assert latent.reward([3.0, 4.0]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r'embedding must have shape \(2,\), got \(3,\)'):
        latent.reward([3.0, 4.0, 0.0])
    with pytest.raises(ValueError, match='goal must be finite'):
        latent.set_goal([float('nan'), 0.0])


def test_grasp2vec_reward_scores_the_grasped_object_against_the_goal_object():
    dot = Grasp2VecReward(scale=0.5, normalize=False)
    dot.set_goal([1.0, 2.0])
    assert dot.reward([3.0, 4.0]) == pytest.approx(5.5)
    cosine = Grasp2VecReward()
    cosine.set_goal([2.0, 0.0])
    assert cosine.reward([3.0, 3.0]) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match='normalize must be a bool, got 1'):
        Grasp2VecReward(normalize=1)
