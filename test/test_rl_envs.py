"""TrayGoalEnv against the sim's ground truth: actions move the hand as documented, goal images are taken of the
goal state and the scene is put back, push moves the puck, and exploration bags train the VAEs."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_robot.rl.envs import TrayGoalEnv
from ssl_robot.apps.explore import record_exploration
from ssl_robot.rl.tasks import (HAND_HEIGHT_M, PUCK_HALF_EXTENT_M, WORKSPACE_CENTER_XY, WORKSPACE_HALF_EXTENT_M,
                                EnvConfig, GoalState, state_vector)
from ssl_robot.sim.cameras import project_to_pixel
from ssl_robot.sim.config import load_sim_config

# The arm follows its commanded waypoint with a lag of a few millimetres (position gains 0.3).
TRACKING_TOLERANCE_M = 0.006


@pytest.fixture(scope='module')
def reach_env():
    env = TrayGoalEnv(EnvConfig(task='reach', mode='state'))
    yield env
    env.close()


def test_an_action_moves_the_hand_by_at_most_the_step_per_axis(reach_env):
    reach_env.reset(seed=3)
    for action in ([1.0, 0.0], [0.0, -1.0], [0.5, 0.5], [-1.0, 1.0]):
        before = reach_env.hand_xy()
        reach_env.step(np.array(action, np.float32))
        moved = reach_env.hand_xy() - before
        expected = np.array(action) * reach_env.config.action_step_m
        np.testing.assert_allclose(moved, expected, atol=TRACKING_TOLERANCE_M)


def test_actions_beyond_the_bounds_are_clipped_and_the_hand_stays_in_the_workspace(reach_env):
    reach_env.reset(seed=4)
    for _ in range(30):
        reach_env.step(np.array([5.0, -5.0], np.float32))
    hand = reach_env.hand_xy()
    corner = np.array(WORKSPACE_CENTER_XY) + [WORKSPACE_HALF_EXTENT_M, -WORKSPACE_HALF_EXTENT_M]
    np.testing.assert_allclose(hand, corner, atol=TRACKING_TOLERANCE_M)


def test_non_finite_actions_are_refused(reach_env):
    reach_env.reset(seed=5)
    with pytest.raises(ValueError, match='action must be 2 finite numbers'):
        reach_env.step(np.array([np.nan, 0.0]))


def test_state_observations_are_the_true_positions_and_the_episode_truncates(reach_env):
    obs, info = reach_env.reset(seed=6, options={'goal_state': GoalState((0.5, 0.1))})
    np.testing.assert_allclose(obs['observation'], state_vector('reach', info['hand_xy'], None), atol=1e-6)
    np.testing.assert_allclose(obs['desired_goal'], [0.5 - 0.6, 0.1], atol=1e-6)
    for step in range(reach_env.config.episode_steps):
        obs, reward, terminated, truncated, info = reach_env.step(np.zeros(2, np.float32))
        assert not terminated
        assert truncated == (step == reach_env.config.episode_steps - 1)
    assert reward == pytest.approx(-info['hand_distance'], abs=1e-5)


def test_the_goal_image_shows_the_goal_state_and_the_scene_is_put_back():
    env = TrayGoalEnv(EnvConfig(task='push', mode='pixel', goal_source='state', pixel_size=48))
    try:
        goal = GoalState((0.5, -0.1), (0.52, -0.06))
        obs, info = env.reset(seed=7, options={'goal_state': goal})
        start_hand, start_puck = info['hand_xy'], info['object_xy']
        assert np.linalg.norm(start_puck - np.array(goal.object_xy)) > 0.02   # the goal is elsewhere
        # Driving the scene to the goal state by hand reproduces the goal image.
        env._teleport(np.array(goal.hand_xy), np.array(goal.object_xy))
        posed = env._observe()
        assert np.abs(posed - obs['desired_goal']).mean() < 0.01
        assert np.abs(obs['observation'] - obs['desired_goal']).mean() > 0.01
        env._teleport(start_hand, start_puck)
        assert np.abs(env._observe() - obs['observation']).mean() < 0.01
    finally:
        env.close()


def test_each_task_has_its_own_camera_rig_unless_told_another():
    assert [EnvConfig(task=task).camera_rig for task in ('reach', 'push')] == ['task', 'task_push']
    assert EnvConfig(task='push', rig='task_push_oblique').camera_rig == 'task_push_oblique'


@pytest.mark.parametrize('task, rig, min_puck_px', [('reach', 'task', None), ('push', 'task_push', 6.0),
                                                    ('push', 'task_push_oblique', 5.0)])
def test_each_task_camera_sees_its_whole_workspace_and_the_push_cameras_show_the_puck_large(task, rig, min_puck_px):
    camera = load_sim_config(rig=rig).cameras[0]
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]])
    for x, y in np.array(WORKSPACE_CENTER_XY) + WORKSPACE_HALF_EXTENT_M * corners:
        u, v = project_to_pixel(camera, (x, y, HAND_HEIGHT_M[task]))
        assert 0 <= u < camera.width and 0 <= v < camera.height, (task, x, y, u, v)
    if min_puck_px is not None:
        # A 6 cm puck at every corner of its start square, across and along the view (the oblique camera
        # foreshortens it along): a beta-VAE of 4 px pucks encoded only the hand.
        for x, y in np.array(WORKSPACE_CENTER_XY) + PUCK_HALF_EXTENT_M * corners:
            for dx, dy in ((0.03, 0), (0, 0.03)):
                ends = [project_to_pixel(camera, (x + sign * dx, y + sign * dy, 0.03)) for sign in (1, -1)]
                assert np.linalg.norm(ends[0] - ends[1]) >= min_puck_px, (rig, x, y, dx, dy)


def test_pushing_into_the_puck_moves_it():
    env = TrayGoalEnv(EnvConfig(task='push', mode='state'))
    try:
        env.reset(seed=8)
        puck = env.object_xy()
        assert np.all(np.abs(puck - WORKSPACE_CENTER_XY) <= PUCK_HALF_EXTENT_M + 0.01)
        env._teleport(puck + [0.0, -0.08], puck)
        for _ in range(8):
            env.step(np.array([0.0, 1.0], np.float32))
        moved = env.object_xy() - puck
        assert moved[1] > 0.03, moved
    finally:
        env.close()


def test_the_oracles_puck_weight_scales_the_puck_in_observations_goals_and_reward():
    env = TrayGoalEnv(EnvConfig(task='push', mode='state', state_puck_weight=0.3))
    try:
        goal = GoalState((0.55, 0.05), (0.65, -0.05))
        obs, info = env.reset(seed=7, options={'goal_state': goal})
        weights = np.array([1.0, 1.0, 0.3, 0.3])
        np.testing.assert_allclose(obs['observation'], weights * state_vector('push', info['hand_xy'],
                                                                                info['object_xy']), atol=1e-6)
        np.testing.assert_allclose(obs['desired_goal'], weights * state_vector('push', np.array(goal.hand_xy),
                                                                                 np.array(goal.object_xy)), atol=1e-6)
        obs, reward, _, _, info = env.step(np.zeros(2, np.float32))
        expected = np.hypot(info['hand_distance'], 0.3 * info['object_distance'])
        assert reward == pytest.approx(-expected, abs=1e-5)
        prior = env.sample_prior_goals(10000, np.random.default_rng(0))
        np.testing.assert_allclose(np.abs(prior).max(axis=0), weights * WORKSPACE_HALF_EXTENT_M, rtol=1e-3)
    finally:
        env.close()


def test_a_policy_observing_the_state_sees_true_positions_while_goals_and_reward_stay_latent():
    config = EnvConfig(task='push', mode='latent', goal_source='state', policy_observation='state')
    env, latent_env = TrayGoalEnv(config), TrayGoalEnv(EnvConfig(task='push', mode='latent', goal_source='state'))
    try:
        goal = GoalState((0.55, 0.05), (0.65, -0.05))
        obs, info = env.reset(seed=7, options={'goal_state': goal})
        latent_obs, _ = latent_env.reset(seed=7, options={'goal_state': goal})
        assert obs['observation'].shape == (4,) and obs['achieved_goal'].shape == (env.observer.dim,)
        assert env.observation_space['observation'].shape == (4,)
        assert env.observation_space['desired_goal'].shape == (env.observer.dim,)
        np.testing.assert_allclose(obs['desired_goal'], latent_obs['desired_goal'], atol=1e-5)
        for _ in range(3):
            action = np.array([0.5, -1.0], np.float32)
            obs, reward, _, _, info = env.step(action)
            latent_obs, latent_reward, *_ = latent_env.step(action)
            np.testing.assert_allclose(obs['observation'], state_vector('push', info['hand_xy'], info['object_xy']),
                                       atol=1e-6)
            np.testing.assert_allclose(obs['achieved_goal'], latent_obs['achieved_goal'], atol=1e-5)
            assert reward == pytest.approx(latent_reward, abs=1e-5)
            assert reward == pytest.approx(float(env.compute_reward(obs['achieved_goal'], obs['desired_goal'], info)))
    finally:
        env.close()
        latent_env.close()


def test_the_state_mode_cannot_observe_the_state_instead_of_itself():
    with pytest.raises(ValueError, match='policy_observation'):
        EnvConfig(task='push', mode='state', policy_observation='state')


@pytest.mark.parametrize('task, mode, weight', [('push', 'state', 0.0), ('push', 'latent', 0.3),
                                                ('reach', 'state', 0.3)])
def test_a_puck_weight_is_refused_where_it_would_mean_nothing(task, mode, weight):
    with pytest.raises(ValueError, match='state_puck_weight'):
        EnvConfig(task=task, mode=mode, state_puck_weight=weight)


def test_latent_mode_refuses_a_vae_of_another_image_size(tmp_path):
    with pytest.raises(ValueError, match='takes 3-channel 48 px images, but the env renders 3-channel 64 px'):
        TrayGoalEnv(EnvConfig(task='reach', mode='latent', image_size=64,
                              vae_checkpoint='ssl_robot/checkpoints/betavae.safetensors'))


def test_pixel_mode_needs_true_goal_states():
    with pytest.raises(ValueError, match='pixel mode has no goal prior'):
        EnvConfig(mode='pixel', goal_source='prior')


def test_an_exploration_bag_trains_a_vae(tmp_path):
    from ssl_robot.data.config import DataConfig
    from ssl_robot.data.recordings import index_recordings

    report = record_exploration('reach', 3, tmp_path / 'bag', seed=1, episode_steps=10, progress=lambda _: None)
    assert (report.episodes, report.frames) == (3, 33)
    recordings = index_recordings('ccvae', [tmp_path / 'bag'], DataConfig(image_size=48))
    assert recordings.cameras == ('/cameras/task/image_raw',)
    assert [len(frames) for frames in recordings.frames] == [11, 11, 11]


def test_exploration_records_the_rig_it_is_given(tmp_path):
    from ssl_robot.data.config import DataConfig
    from ssl_robot.data.recordings import index_recordings

    rig = tmp_path / 'oblique.yaml'
    rig.write_text('defaults: {width: 48, height: 48, fov_deg: 34}\n'
                   'cameras:\n  - {name: oblique, eye: [1.0, 0.0, 0.4], target: [0.6, 0.0, 0.0]}\n')
    record_exploration('push', 1, tmp_path / 'bag', seed=1, episode_steps=2, rig=str(rig), progress=lambda _: None)
    recordings = index_recordings('betavae', [tmp_path / 'bag'], DataConfig(image_size=48))
    assert recordings.cameras == ('/cameras/oblique/image_raw',)
